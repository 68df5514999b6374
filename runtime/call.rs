//! One call on the caller's side: encodes items into chunks as results are
//! consumed, and hands results back in input order.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::chunk::{ChunkPlan, CHUNK_BYTES};
use crate::dispatch::{Call, Chunk, Failure, Link, Reply};
use crate::error::Error;
use crate::frame::{self, Refusal, ToWorker};
use crate::job::Outcome;
use crate::task::Task;

/// Numbers calls uniquely within the process.
static NEXT_CALL: AtomicU64 = AtomicU64::new(0);

/// A source of items that encodes them into a chunk frame.
trait Feed {
    /// Appends up to `max` encoded items to `buf`, stopping early after
    /// [`CHUNK_BYTES`].
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Filled;
}

/// What one [`Feed::fill`] did.
struct Filled {
    count: u32,
    /// The item after the last one taken could not be encoded.
    unencodable: Option<String>,
    /// The input has no more items.
    exhausted: bool,
}

impl<I> Feed for I
where
    I: Iterator,
    I::Item: Serialize,
{
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Filled {
        let mut count = 0;
        while (count as usize) < max && buf.len() < CHUNK_BYTES {
            let Some(item) = self.next() else {
                return Filled {
                    count,
                    unencodable: None,
                    exhausted: true,
                };
            };
            let mark = buf.len();
            if let Err(e) = frame::encode_into(&item, buf) {
                buf.truncate(mark);
                return Filled {
                    count,
                    unencodable: Some(e.to_string()),
                    exhausted: false,
                };
            }
            count += 1;
        }
        Filled {
            count,
            unencodable: None,
            exhausted: false,
        }
    }
}

/// A call's input: read only as results are taken, so that at most
/// `window` chunks are out at once and an endless input runs in bounded
/// memory.
pub(crate) struct Source<'a> {
    feed: Option<Box<dyn Feed + 'a>>,
    plan: ChunkPlan,
    window: usize,
    /// The index the next chunk starts at.
    next_first: u64,
}

/// The results of one call, in input order, as they come back.
pub(crate) struct Results<O> {
    link: Arc<Link>,
    id: u64,
    function: &'static str,
    replies: Receiver<Reply>,
    /// Chunks sent to the dispatcher whose replies have not come.
    in_flight: usize,
    /// Replies that came before their turn, by first index.
    arrived: BTreeMap<u64, Reply>,
    current: Option<Decoding>,
    /// The index of the next result to hand out.
    next_index: u64,
    closed: bool,
    output: PhantomData<fn() -> O>,
}

/// A call in progress: its input and its results.
pub(crate) struct Ordered<'a, O> {
    source: Source<'a>,
    results: Results<O>,
}

/// A reply being handed out item by item.
struct Decoding {
    reply: Reply,
    /// For a `Done` reply, where the next outcome starts in the frame body.
    at: usize,
    next: u64,
    end: u64,
}

impl<'a, O: DeserializeOwned> Ordered<'a, O> {
    /// Sets up a call of `task` over `items` on the dispatcher behind `link`,
    /// and sends the first chunks.
    pub(crate) fn start<F, Args, I>(
        link: &Arc<Link>,
        workers: usize,
        task: &F,
        items: I,
    ) -> Result<Self, Error>
    where
        F: Task<Args, Output = O>,
        I: Iterator<Item = Args> + 'a,
        Args: Serialize,
    {
        let mut setup = Vec::new();
        let described = task.__describe(&mut setup).map_err(|e| Error::Codec {
            function: std::any::type_name::<F>().to_owned(),
            what: "encode the factory's arguments".into(),
            reason: e.to_string(),
        })?;
        let id = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        let mut setup_frame = Vec::with_capacity(setup.len() + 64);
        frame::begin(
            &mut setup_frame,
            &ToWorker::Call {
                call: id,
                entry: described.entry,
            },
        );
        setup_frame.extend_from_slice(&setup);
        frame::finish(&mut setup_frame).map_err(|e| Error::Codec {
            function: described.name.to_owned(),
            what: "send the factory's arguments".into(),
            reason: e.to_string(),
        })?;
        let (replies_to, replies) = mpsc::channel();
        link.open(Arc::new(Call {
            id,
            setup: Arc::new(setup_frame),
            replies: replies_to,
        }));
        let mut ordered = Ordered {
            source: Source {
                plan: ChunkPlan::new(workers, items.size_hint()),
                feed: Some(Box::new(items)),
                window: 3 * workers.max(1),
                next_first: 0,
            },
            results: Results {
                link: Arc::clone(link),
                id,
                function: described.name,
                replies,
                in_flight: 0,
                arrived: BTreeMap::new(),
                current: None,
                next_index: 0,
                closed: false,
                output: PhantomData,
            },
        };
        ordered.source.top_up(&mut ordered.results);
        Ok(ordered)
    }

    /// The results, once every item has been sent.
    pub(crate) fn into_sent(mut self) -> Results<O> {
        self.source.top_up(&mut self.results);
        debug_assert!(
            self.source.feed.is_none(),
            "only a call whose input fits in its window has sent everything"
        );
        self.results
    }
}

impl<O: DeserializeOwned> Iterator for Ordered<'_, O> {
    type Item = Result<O, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.results.next_with(Some(&mut self.source))
    }
}

impl Source<'_> {
    /// Sends chunks until `window` are out or the input ends.
    fn top_up<O>(&mut self, results: &mut Results<O>) {
        while results.in_flight + results.arrived.len() < self.window {
            let Some(feed) = &mut self.feed else { return };
            let first = self.next_first;
            let mut buf = Vec::new();
            frame::begin(
                &mut buf,
                &ToWorker::Chunk {
                    call: results.id,
                    first,
                },
            );
            let filled = feed.fill(&mut buf, self.plan.next_size());
            if filled.exhausted {
                self.feed = None;
            }
            self.next_first += u64::from(filled.count);
            if filled.count > 0 {
                buf.extend_from_slice(&filled.count.to_le_bytes());
                match frame::finish(&mut buf) {
                    Ok(()) => results.send(Chunk {
                        call: results.id,
                        first,
                        count: filled.count,
                        frame: Arc::new(buf),
                    }),
                    Err(e) => results.fail_here(
                        first,
                        filled.count,
                        format!("could not send items {first}..: {e}"),
                    ),
                }
            }
            if let Some(reason) = filled.unencodable {
                let index = self.next_first;
                self.next_first += 1;
                results.fail_here(index, 1, format!("could not encode item {index}: {reason}"));
            }
        }
    }
}

impl<O: DeserializeOwned> Results<O> {
    /// The next result in input order, topping the input up from `source`.
    pub(crate) fn next_with(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<O, Error>> {
        loop {
            if let Some(decoding) = &mut self.current {
                if let Some(result) = decoding.next::<O>(self.function) {
                    self.next_index += 1;
                    return Some(result);
                }
                self.current = None;
            }
            if let Some(source) = source.as_deref_mut() {
                source.top_up(self);
            }
            if let Some(reply) = self.arrived.remove(&self.next_index) {
                self.current = Some(Decoding::new(reply));
                continue;
            }
            if self.in_flight == 0 {
                self.close();
                return None;
            }
            match self.replies.recv() {
                Ok(reply) => {
                    self.in_flight -= 1;
                    self.arrived.insert(reply.first(), reply);
                }
                Err(_) => {
                    // The dispatcher is gone: nothing more will come.
                    if let Some(source) = source {
                        source.feed = None;
                    }
                    self.in_flight = 0;
                    self.arrived.clear();
                    self.close();
                    return Some(Err(Error::Closed));
                }
            }
        }
    }
}

impl<O> Results<O> {
    fn send(&mut self, chunk: Chunk) {
        self.link.run(chunk);
        self.in_flight += 1;
    }

    /// Records items that failed before leaving this process.
    fn fail_here(&mut self, first: u64, count: u32, reason: String) {
        let failure = Failure::Codec(reason);
        self.arrived.insert(
            first,
            Reply::Failed {
                first,
                count,
                failure,
            },
        );
    }

    /// Tells the dispatcher to forget the call, once.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.link.close(self.id);
        }
    }
}

impl<O> Drop for Results<O> {
    fn drop(&mut self) {
        self.close();
    }
}

impl Decoding {
    fn new(reply: Reply) -> Self {
        let (first, count, at) = match &reply {
            Reply::Done {
                first,
                count,
                outcomes,
                ..
            } => (*first, *count, *outcomes),
            Reply::Failed { first, count, .. } => (*first, *count, 0),
        };
        Decoding {
            reply,
            at,
            next: first,
            end: first + u64::from(count),
        }
    }

    /// The next item's result, or `None` when the reply is used up.
    fn next<O: DeserializeOwned>(&mut self, function: &str) -> Option<Result<O, Error>> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let at_index = |index: u64| usize::try_from(index).unwrap_or(usize::MAX);
        Some(match &self.reply {
            Reply::Done { frame, .. } => {
                let body = frame.body();
                match postcard::take_from_bytes::<Outcome<O>>(&body[self.at..]) {
                    Ok((outcome, rest)) => {
                        self.at = body.len() - rest.len();
                        match outcome {
                            Outcome::Done(value) => Ok(value),
                            Outcome::Panicked(panic) => Err(Error::Panic {
                                function: function.to_owned(),
                                index: at_index(index),
                                panic,
                            }),
                            Outcome::Unencodable(reason) => Err(Error::Codec {
                                function: function.to_owned(),
                                what: format!("encode the result of item {index}"),
                                reason,
                            }),
                        }
                    }
                    Err(e) => {
                        // The rest of this reply cannot be read either.
                        self.at = body.len();
                        Err(Error::Codec {
                            function: function.to_owned(),
                            what: format!("decode the result of item {index}"),
                            reason: e.to_string(),
                        })
                    }
                }
            }
            Reply::Failed { failure, .. } => Err(failure_error(failure, function, at_index(index))),
        })
    }
}

fn failure_error(failure: &Failure, function: &str, index: usize) -> Error {
    let function = function.to_owned();
    match failure {
        Failure::Died(death) => Error::WorkerDied {
            function,
            index,
            death: *death,
        },
        Failure::Refused(Refusal::FactoryPanicked(panic)) => Error::Setup {
            function,
            index,
            reason: format!("the factory panicked at {panic}"),
        },
        Failure::Refused(Refusal::Unrunnable(reason)) => Error::Setup {
            function,
            index,
            reason: reason.clone(),
        },
        Failure::Spawn(reason) => Error::Spawn(std::io::Error::other(reason.clone())),
        Failure::Codec(reason) => Error::Codec {
            function,
            what: format!("run item {index}"),
            reason: reason.clone(),
        },
    }
}
