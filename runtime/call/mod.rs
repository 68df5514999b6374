//! One call on the caller's side: encodes items into chunks as results are
//! consumed, and hands results back in input order.

pub(crate) mod chunk;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::reply::{Call, Chunk, Failure, Reply, WakerSlot};
use crate::backend::Link;
use crate::call::chunk::{ChunkPlan, CHUNK_BYTES};
use crate::error::Error;
use crate::platform::board::Board;
use crate::protocol::frame::{self, Received, Refusal, ToWorker};
use crate::protocol::job::{self, Outcome};
use crate::protocol::task::Task;
use crate::worker::Session;

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

/// A serial call's worker: what a worker process runs, in this thread.
struct Here {
    session: Session,
    board: Board,
    /// Set when the pool is terminated.
    terminated: Arc<AtomicBool>,
}

/// Where a call's chunks run.
pub(crate) enum Runner {
    /// On a dispatcher's workers.
    Pool(Arc<Link>),
    /// At once in this thread, by the code a worker runs, until the flag
    /// says the pool was terminated.
    Here(Arc<AtomicBool>),
}

/// A call's input: read only as results are taken, so that at most
/// `window` chunks are out at once and an endless input runs in bounded
/// memory.
struct Source<'a> {
    /// Where chunks run, for a serial call.
    here: Option<Box<Here>>,
    feed: Option<Box<dyn Feed + 'a>>,
    plan: ChunkPlan,
    window: usize,
    /// The index the next chunk starts at.
    next_first: u64,
    /// Whether the call's chunks run quickly (the dispatcher says).
    quick: Arc<AtomicBool>,
}

/// The results of one call as they come back, decoded on demand.
pub(crate) struct Results {
    /// The dispatcher the chunks went to; `None` when they ran here.
    link: Option<Arc<Link>>,
    id: u64,
    function: &'static str,
    replies: Receiver<Reply>,
    waker: Arc<WakerSlot>,
    /// Chunks sent to the dispatcher whose items have not all come back:
    /// first index, and how many items are still to come.
    open: BTreeMap<u64, u32>,
    /// Replies not yet handed out, by first index.
    arrived: BTreeMap<u64, Reply>,
    current: Option<Decoding>,
    /// The index of the next result to hand out in input order.
    next_index: u64,
    /// How many items the input said it held at least: room for the values.
    expected: usize,
    /// A caller waits for this call's one result: it looks for the reply
    /// in a loop for a moment before sleeping ([`Results::recv_soon`]).
    eager: bool,
    /// The pool was terminated before every item was read: the results
    /// end with [`Error::Closed`].
    cut_off: bool,
    /// Every item has been sent, so dropping the results lets the call
    /// run to its end instead of cancelling it.
    sealed: bool,
    closed: bool,
}

/// A call in progress: its input and its results.
pub(crate) struct Running<'a> {
    source: Source<'a>,
    results: Results,
}

/// A reply being handed out item by item.
struct Decoding {
    reply: Reply,
    /// For a `Done` reply, where the next outcome starts in the frame body.
    at: usize,
    next: u64,
    end: u64,
}

impl<'a> Running<'a> {
    /// Sets up a call of `task` over `items` on `runner`, chunked by `plan`
    /// with at most `window` chunks out and each item killed after
    /// `timeout`, and sends the first chunks.
    pub(crate) fn start<F, Args, I>(
        runner: Runner,
        plan: ChunkPlan,
        window: usize,
        timeout: Option<Duration>,
        task: &F,
        items: I,
    ) -> Result<Self, Error>
    where
        F: Task<Args>,
        I: Iterator<Item = Args> + 'a,
        Args: Serialize,
    {
        let mut setup = Vec::new();
        let described = task.__describe(&mut setup).map_err(|e| Error::Codec {
            function: std::any::type_name::<F>().to_owned(),
            index: None,
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
                timed: timeout.is_some(),
            },
        );
        setup_frame.extend_from_slice(&setup);
        frame::finish(&mut setup_frame).map_err(|e| Error::Codec {
            function: described.name.to_owned(),
            index: None,
            what: "send the factory's arguments".into(),
            reason: e.to_string(),
        })?;
        let (call, replies, waker) = Call::new(id, timeout, setup_frame);
        let expected = items.size_hint().0;
        let quick = Arc::clone(&call.quick);
        let (link, here) = match runner {
            Runner::Pool(link) => {
                link.open(call);
                (Some(link), None)
            }
            Runner::Here(terminated) => {
                let mut here = Box::new(Here {
                    session: Session::new(false),
                    board: Board::default(),
                    terminated,
                });
                // Setting a call up sends no reply.
                let mut no_reply = |_: &[u8]| Ok(());
                here.session
                    .handle(&call.setup[4..], &here.board, &mut no_reply)
                    .map_err(|e| Error::Codec {
                        function: described.name.to_owned(),
                        index: None,
                        what: "set the call up".into(),
                        reason: e.to_string(),
                    })?;
                // Chunks that run here wait for nothing.
                call.quick.store(true, Ordering::Relaxed);
                (None, Some(here))
            }
        };
        let mut running = Running {
            source: Source {
                here,
                plan,
                feed: Some(Box::new(items)),
                window: window.max(1),
                next_first: 0,
                quick,
            },
            results: Results {
                link,
                id,
                function: described.name,
                replies,
                waker,
                open: BTreeMap::new(),
                arrived: BTreeMap::new(),
                current: None,
                next_index: 0,
                expected,
                eager: false,
                cut_off: false,
                sealed: false,
                closed: false,
            },
        };
        running.source.top_up(&mut running.results);
        Ok(running)
    }

    /// The results, once every item has been sent.
    pub(crate) fn into_sent(mut self) -> Results {
        self.source.window = usize::MAX;
        self.source.top_up(&mut self.results);
        self.results.sealed = true;
        self.results
    }

    /// Every result in input order, reading the input as results come back:
    /// the values, or the first item's error.
    pub(crate) fn collect<O: DeserializeOwned>(mut self) -> Result<Vec<O>, Error> {
        self.results.collect_from(Some(&mut self.source))
    }

    /// The next result in input order.
    pub(crate) fn next_ordered<O: DeserializeOwned>(&mut self) -> Option<Result<O, Error>> {
        self.results.next_ordered(Some(&mut self.source))
    }

    /// The next result to arrive, with its index.
    pub(crate) fn next_unordered<O: DeserializeOwned>(
        &mut self,
    ) -> Option<Result<(usize, O), Error>> {
        self.results.next_unordered(Some(&mut self.source))
    }
}

impl Source<'_> {
    /// Sends chunks until `window` are out or the input ends.
    fn top_up(&mut self, results: &mut Results) {
        if let Some(here) = &self.here {
            if self.feed.is_some() && here.terminated.load(Ordering::Acquire) {
                // What a dispatcher's end does to a pooled call.
                self.feed = None;
                results.cut_off = true;
            }
        }
        while results.open.len() + results.arrived.len() < self.window {
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
            let quick = self.quick.load(Ordering::Relaxed);
            let filled = feed.fill(&mut buf, self.plan.next_size(quick));
            if filled.exhausted {
                self.feed = None;
            }
            self.next_first += u64::from(filled.count);
            if filled.count > 0 {
                buf.extend_from_slice(&filled.count.to_le_bytes());
                match frame::finish(&mut buf) {
                    Ok(()) => {
                        let chunk = Chunk {
                            call: results.id,
                            first,
                            count: filled.count,
                            frame: Arc::new(buf),
                        };
                        match &mut self.here {
                            Some(here) => results.run_here(here, chunk),
                            None => results.send(chunk),
                        }
                    }
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

/// How long a caller waiting for one result looks for it before sleeping.
const EAGER_WAIT: Duration = Duration::from_micros(200);

/// How long [`Results::pump`] may block.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    No,
    Until(Instant),
}

impl Results {
    /// The next result in input order, topping the input up from `source`.
    fn next_ordered<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<O, Error>> {
        loop {
            if let Some(decoding) = &mut self.current {
                if let Some((_, result)) = decoding.next::<O>(self.function) {
                    return Some(result);
                }
                self.current = None;
            }
            match self.next_reply_ordered(source.as_deref_mut())? {
                Ok(reply) => self.current = Some(Decoding::new(reply)),
                Err(closed) => return Some(Err(closed)),
            }
        }
    }

    /// The reply holding the next results in input order, topping the input
    /// up from `source`.
    fn next_reply_ordered(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<Reply, Error>> {
        loop {
            if let Some(source) = source.as_deref_mut() {
                source.top_up(self);
            }
            if let Some(reply) = self.arrived.remove(&self.next_index) {
                self.next_index += u64::from(reply.count());
                return Some(Ok(reply));
            }
            if let Err(closed) = self.receive(source.as_deref_mut())? {
                return Some(Err(closed));
            }
        }
    }

    /// The next result of any reply that has come, with its index.
    fn next_unordered<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<(usize, O), Error>> {
        loop {
            if let Some(decoding) = &mut self.current {
                if let Some((index, result)) = decoding.next::<O>(self.function) {
                    return Some(result.map(|value| (at_index(index), value)));
                }
                self.current = None;
            }
            if let Some(source) = source.as_deref_mut() {
                source.top_up(self);
            }
            if let Some((_, reply)) = self.arrived.pop_first() {
                self.current = Some(Decoding::new(reply));
                continue;
            }
            if let Err(closed) = self.receive(source.as_deref_mut())? {
                return Some(Err(closed));
            }
        }
    }

    /// Every result in input order, once all items have been sent: the
    /// values, or [`Error::Incomplete`].
    pub(crate) fn collect<O: DeserializeOwned>(mut self) -> Result<Vec<O>, Error> {
        self.collect_from(None)
    }

    /// Every result in input order, topping the input up from `source`.
    fn collect_from<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Result<Vec<O>, Error> {
        let mut tally = Tally::with_capacity(self.expected);
        while let Some(reply) = self.next_reply_ordered(source.as_deref_mut()) {
            tally.add_reply(reply?, self.function)?;
        }
        tally.finish()
    }

    /// The one result of a call of one item.
    pub(crate) fn single<O: DeserializeOwned>(mut self) -> Result<O, Error> {
        self.eager = true;
        self.next_ordered(None).unwrap_or(Err(Error::Closed))
    }

    /// Waits for one reply. `None` when no reply is to come; `Err` when the
    /// dispatcher went away, which also ends the input.
    fn receive(&mut self, source: Option<&mut Source<'_>>) -> Option<Result<(), Error>> {
        if self.open.is_empty() {
            self.close();
            return std::mem::take(&mut self.cut_off).then_some(Err(Error::Closed));
        }
        let reply = match self.eager {
            true => self.recv_soon(),
            false => self.replies.recv().map_err(|_| TryRecvError::Disconnected),
        };
        match reply {
            Ok(reply) => {
                self.take_in(reply);
                Some(Ok(()))
            }
            Err(_) => {
                // The dispatcher is gone: nothing more will come.
                if let Some(source) = source {
                    source.feed = None;
                }
                self.open.clear();
                self.arrived.clear();
                self.current = None;
                self.close();
                Some(Err(Error::Closed))
            }
        }
    }

    /// Waits for a reply, looking for it in a loop for a moment before going
    /// to sleep: waking a sleeping thread costs tens of microseconds on many
    /// machines, more than a quick task takes. On a machine of one CPU it
    /// sleeps at once, since the loop would hold up the worker it waits for.
    fn recv_soon(&self) -> Result<Reply, TryRecvError> {
        static SEVERAL_CPUS: OnceLock<bool> = OnceLock::new();
        if *SEVERAL_CPUS.get_or_init(|| thread::available_parallelism().is_ok_and(|n| n.get() > 1))
        {
            let until = Instant::now() + EAGER_WAIT;
            while Instant::now() < until {
                match self.replies.try_recv() {
                    Err(TryRecvError::Empty) => std::hint::spin_loop(),
                    other => return other,
                }
            }
        }
        self.replies.recv().map_err(|_| TryRecvError::Disconnected)
    }

    /// Takes in the replies that have come, waiting as `wait` allows;
    /// true once every reply is in.
    pub(crate) fn pump(&mut self, wait: Wait) -> bool {
        while !self.open.is_empty() {
            let received = match wait {
                Wait::No => self
                    .replies
                    .try_recv()
                    .map_err(|e| e == TryRecvError::Empty),
                Wait::Until(deadline) => self
                    .replies
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .map_err(|e| e == RecvTimeoutError::Timeout),
            };
            match received {
                Ok(reply) => self.take_in(reply),
                Err(true) => return false,
                // Gone: decoding will say the pool closed.
                Err(false) => return true,
            }
        }
        true
    }

    /// Where a future waiting for this call leaves its waker.
    pub(crate) fn waker(&self) -> &WakerSlot {
        &self.waker
    }

    fn send(&mut self, chunk: Chunk) {
        if let Some(link) = &self.link {
            self.open.insert(chunk.first, chunk.count);
            link.run(chunk);
        }
    }

    /// Takes in a reply from the dispatcher, and counts its items as come.
    fn take_in(&mut self, reply: Reply) {
        let first = reply.first();
        if let Some((&chunk, left)) = self.open.range_mut(..=first).next_back() {
            *left = left.saturating_sub(reply.count());
            if *left == 0 {
                self.open.remove(&chunk);
            }
        }
        self.arrived.insert(first, reply);
    }

    /// Runs a chunk in this thread, as a worker would.
    fn run_here(&mut self, here: &mut Here, chunk: Chunk) {
        let mut replies = Vec::new();
        let handled = here
            .session
            .handle(&chunk.frame[4..], &here.board, &mut |reply: &[u8]| {
                replies.push(Reply::from_frame(Received::whole(reply.to_vec())));
                Ok(())
            });
        if let Err(e) = handled {
            return self.fail_here(chunk.first, chunk.count, e.to_string());
        }
        for reply in replies {
            match reply {
                Ok((_, reply, _)) => {
                    self.arrived.insert(reply.first(), reply);
                }
                Err(reason) => return self.fail_here(chunk.first, chunk.count, reason),
            }
        }
    }

    /// Records items that failed without a worker's reply.
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
            if let Some(link) = &self.link {
                link.close(self.id);
            }
        }
    }
}

impl Drop for Results {
    /// Cancels a lazy call's items not yet started; lets a call whose items
    /// were all sent (an async one) run to its end, as Python does for a
    /// task whose result nobody asks for.
    fn drop(&mut self) {
        if self.sealed && !self.closed {
            self.closed = true;
            if let Some(link) = &self.link {
                link.detach(self.id);
            }
        }
        self.close();
    }
}

/// What a `map` has got so far: the values, until an item fails, and how
/// many items completed and failed. It takes every result, even after a
/// failure, so that each item runs.
struct Tally<O> {
    values: Vec<O>,
    completed: usize,
    failed: usize,
    first: Option<Error>,
}

impl<O: DeserializeOwned> Tally<O> {
    fn with_capacity(items: usize) -> Self {
        Tally {
            values: Vec::with_capacity(items),
            completed: 0,
            failed: 0,
            first: None,
        }
    }

    /// Takes in every result of a reply. An error of the pool itself (it
    /// closed, a worker could not start) ends the call as it is.
    fn add_reply(&mut self, reply: Reply, function: &str) -> Result<(), Error> {
        match reply {
            Reply::Done {
                first,
                count,
                frame,
                outcomes,
            } => {
                // The hot loop of `map`: one outcome after the other.
                let body = frame.body();
                let mut at = outcomes;
                for index in first..first + u64::from(count) {
                    match read_outcome(body, &mut at, function, index) {
                        Ok(value) => {
                            self.completed += 1;
                            if self.first.is_none() {
                                self.values.push(value);
                            }
                        }
                        Err(error) => self.fail(error),
                    }
                }
            }
            Reply::Failed {
                first,
                count,
                failure,
            } => {
                for index in first..first + u64::from(count) {
                    match failure_error(&failure, function, at_index(index)) {
                        error @ Error::Spawn(_) => return Err(error),
                        error => self.fail(error),
                    }
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, error: Error) {
        self.failed += 1;
        self.values = Vec::new();
        self.first.get_or_insert(error);
    }

    /// The values, or [`Error::Incomplete`] with the first item's failure.
    fn finish(self) -> Result<Vec<O>, Error> {
        match self.first {
            None => Ok(self.values),
            Some(first) => Err(Error::Incomplete {
                completed: self.completed,
                failed: self.failed,
                first: Box::new(first),
            }),
        }
    }
}

fn at_index(index: u64) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
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

    /// The next item's index and result, or `None` when the reply is used up.
    fn next<O: DeserializeOwned>(&mut self, function: &str) -> Option<(u64, Result<O, Error>)> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let result = match &self.reply {
            Reply::Done { frame, .. } => read_outcome(frame.body(), &mut self.at, function, index),
            Reply::Failed { failure, .. } => Err(failure_error(failure, function, at_index(index))),
        };
        Some((index, result))
    }
}

/// Reads the outcome of item `index` at `at` in a reply's body, and moves
/// `at` past it. When it does not decode, `at` moves to the end: the rest of
/// the reply cannot be read either.
fn read_outcome<O: DeserializeOwned>(
    body: &[u8],
    at: &mut usize,
    function: &str,
    index: u64,
) -> Result<O, Error> {
    match job::decode_outcome::<O>(&body[*at..]) {
        Ok((outcome, rest)) => {
            *at = body.len() - rest.len();
            match outcome {
                Outcome::Done(value) => Ok(value),
                Outcome::Panicked(panic) => Err(Error::Panic {
                    function: function.to_owned(),
                    index: at_index(index),
                    panic,
                }),
                Outcome::Unencodable(reason) => Err(Error::Codec {
                    function: function.to_owned(),
                    index: Some(at_index(index)),
                    what: format!("encode the result of item {index}"),
                    reason,
                }),
            }
        }
        Err(e) => {
            *at = body.len();
            Err(Error::Codec {
                function: function.to_owned(),
                index: Some(at_index(index)),
                what: format!("decode the result of item {index}"),
                reason: e.to_string(),
            })
        }
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
        Failure::TimedOut(timeout) => Error::Timeout {
            function,
            index,
            timeout: *timeout,
        },
        Failure::OutOfMemory(limit) => Error::OutOfMemory {
            function,
            index,
            limit: *limit,
        },
        Failure::DiedSettingUp { death, initializer } => Error::Setup {
            function,
            index,
            reason: if *initializer {
                format!("the worker {death} while it ran the pool's initializer")
            } else {
                format!("the worker {death} while it ran the factory")
            },
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
        Failure::Refused(Refusal::Undecodable(reason)) => Error::Codec {
            function,
            index: Some(index),
            what: format!("decode the arguments of item {index}"),
            reason: reason.clone(),
        },
        Failure::Refused(Refusal::Initializer(reason)) => Error::Setup {
            function,
            index,
            reason: format!("the pool's initializer failed in this worker: {reason}"),
        },
        Failure::Spawn(reason) => Error::Spawn(std::io::Error::other(reason.clone())),
        Failure::Codec(reason) => Error::Codec {
            function,
            index: Some(index),
            what: format!("run item {index}"),
            reason: reason.clone(),
        },
    }
}
