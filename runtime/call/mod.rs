//! One call on the caller's side: reads the input lazily and encodes it
//! into chunks as results are consumed ([`Running`]), and hands results
//! back in input order ([`Results`]).

pub(crate) mod chunk;
mod feed;
mod outcome;
#[cfg(feature = "progress")]
pub(crate) mod progress;
mod results;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::call::chunk::ChunkPlan;
use crate::call::feed::Feed;
use crate::dispatch::work::{Call, Chunk};
use crate::dispatch::Route;
use crate::error::Error;
use crate::protocol::batch::BatchWriter;
use crate::protocol::frame;
use crate::protocol::message::{Failure, ToWorker};
use crate::protocol::task::Task;

pub(crate) use results::Results;

/// Numbers calls uniquely within the process.
static NEXT_CALL: AtomicU64 = AtomicU64::new(0);

/// A call's input: read only as results are taken, so that at most
/// `window` chunks are out at once and an endless input runs in bounded
/// memory.
struct Source<'a> {
    /// Where its chunks go.
    route: Route,
    feed: Option<Box<dyn Feed + 'a>>,
    plan: ChunkPlan,
    window: usize,
    /// The index the next chunk starts at.
    next_first: u64,
    /// Whether the call's chunks run quickly (the dispatcher says).
    quick: Arc<AtomicBool>,
}

/// What a call shows of itself as it runs, beside its results: its
/// progress bar (feature `progress`), and what its span says (feature
/// `tracing`).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    #[cfg(feature = "progress")]
    pub(crate) progress: Option<progress::Shown>,
    /// The kind of pool.
    #[cfg(feature = "tracing")]
    pub(crate) pool: &'static str,
    /// The chunk size asked for; `None` when it adapts.
    #[cfg(feature = "tracing")]
    pub(crate) chunk_size: Option<usize>,
}

/// A call in progress: its input and its results.
pub(crate) struct Running<'a> {
    source: Source<'a>,
    results: Results,
}

impl<'a> Running<'a> {
    /// Sets up a call of `task` over `items` through `route`, chunked by
    /// `plan` with at most `window` chunks out and each item killed after
    /// `timeout`, shown as `watch` says, and sends the first chunks.
    pub(crate) fn start<F, Args, I>(
        mut route: Route,
        plan: ChunkPlan,
        window: usize,
        timeout: Option<Duration>,
        task: &F,
        items: I,
        watch: Watch,
    ) -> Result<Self, Error>
    where
        F: Task<Args>,
        I: Iterator<Item = Args> + 'a,
    {
        let mut setup = Vec::new();
        let described = task.__describe(&mut setup).map_err(|e| Error::Codec {
            function: std::any::type_name::<F>().to_owned(),
            index: None,
            what: "encode the factory's arguments".into(),
            reason: e.to_string(),
        })?;
        let id = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        let len = match items.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        };
        // The call's span, entered while the call starts: the dispatcher
        // keeps the span current here (`Call::new`) for its own events.
        #[cfg(feature = "tracing")]
        let _entered = tracing::info_span!(
            "call",
            function = described.name,
            call = id,
            items = len,
            chunk_size = watch.chunk_size,
            pool = watch.pool,
        )
        .entered();
        let mut setup_frame = Vec::with_capacity(setup.len() + 64);
        frame::begin(
            &mut setup_frame,
            &ToWorker::Call {
                call: id,
                entry: described.entry,
                timeout,
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
        route.open(call);
        let link = route.link();
        let mut running = Running {
            source: Source {
                route,
                plan,
                feed: Some(Box::new(items.map(|args| F::__args(args)))),
                window: window.max(1),
                next_first: 0,
                quick,
            },
            results: Results::new(link, id, described.name, (replies, waker), expected),
        };
        #[cfg(feature = "progress")]
        if let Some(shown) = watch.progress {
            running.results.progress = Some(progress::Progress::start(shown, described.name, len));
        }
        #[cfg(not(any(feature = "progress", feature = "tracing")))]
        let _ = (watch, len);
        running.source.top_up(&mut running.results);
        Ok(running)
    }

    /// The results, once every item has been sent.
    pub(crate) fn into_sent(mut self) -> Results {
        self.source.window = usize::MAX;
        self.source.top_up(&mut self.results);
        self.results.seal();
        self.results
    }

    /// Every result in input order, reading the input as results come back:
    /// the values, or the first item's error.
    pub(crate) fn collect<O: DeserializeOwned>(mut self) -> Result<Vec<O>, Error> {
        self.results.collect_from(Some(&mut self.source))
    }

    /// Every item's own result in input order, reading the input as results
    /// come back; `Err` only when the call as a whole failed.
    pub(crate) fn collect_each<O: DeserializeOwned>(
        mut self,
    ) -> Result<Vec<Result<O, Error>>, Error> {
        self.results.collect_each_from(Some(&mut self.source))
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
    /// Reads no more of the input.
    fn stop(&mut self) {
        self.feed = None;
    }

    /// Sends chunks until `window` are out or the input ends.
    fn top_up(&mut self, results: &mut Results) {
        while results.in_flight() < self.window {
            let Some(feed) = &mut self.feed else { return };
            let first = self.next_first;
            let mut buf = Vec::new();
            frame::begin(
                &mut buf,
                &ToWorker::Chunk {
                    call: results.id(),
                    first,
                },
            );
            let quick = self.quick.load(Ordering::Relaxed);
            let mut lengths = BatchWriter::new();
            let filled = feed.fill(&mut buf, &mut lengths, self.plan.next_size(quick));
            if filled.exhausted {
                self.feed = None;
            }
            let count = lengths.count();
            self.next_first += u64::from(count);
            if count > 0 {
                lengths.finish(&mut buf);
                match frame::finish(&mut buf) {
                    Ok(()) => {
                        let chunk = Chunk {
                            call: results.id(),
                            first,
                            count,
                            frame: Arc::new(buf),
                            suspect: None,
                        };
                        results.expect(&chunk);
                        self.route.run(chunk);
                    }
                    Err(e) => results.fail_here(
                        first,
                        count,
                        Failure::Codec(format!("could not send items {first}..: {e}")),
                    ),
                }
            }
            if let Some(reason) = filled.unencodable {
                let index = self.next_first;
                self.next_first += 1;
                results.fail_here(index, 1, Failure::Unencodable(reason));
            }
        }
    }
}
