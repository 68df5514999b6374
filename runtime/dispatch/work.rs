//! What passes between a call and the dispatcher: the call, its
//! chunks of encoded items, and the replies that come back.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::protocol::batch::Batch;
use crate::protocol::frame::{self, Received};
use crate::protocol::message::{Failure, FromWorker};

/// A call in progress: one function over any number of items.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: u64,
    /// The longest an item may run before its worker is killed.
    pub(crate) timeout: Option<Duration>,
    /// The `Call` frame that builds the closure in a worker.
    pub(crate) setup: Arc<Vec<u8>>,
    /// Whether its chunks have been running quickly, so that a worker may
    /// hold the next one behind the one it runs (see the dispatcher), and
    /// the caller may grow its chunks. Shared with the caller, which must
    /// not hold the call itself: its end of the replies would then never
    /// see the pool go away.
    pub(crate) quick: Arc<AtomicBool>,
    /// Its caller has gone: what it had not run, it never runs.
    pub(crate) cancelled: AtomicBool,
    /// `None` only while the call is dropped.
    replies: Option<Sender<Reply>>,
    waker: Arc<WakerSlot>,
    /// The call's span: the dispatcher's events about the call are in it.
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

/// How a caller learns that replies came: a future leaves its waker here,
/// and threads waiting on a handle ([`WakerSlot::sleep`]) sleep on it. Woken
/// at each reply, and when the call is dropped by the dispatcher (its pool
/// ended), so that nobody sleeps past the last reply.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot {
    state: Mutex<Wakes>,
    came: Condvar,
}

#[derive(Debug, Default)]
struct Wakes {
    waker: Option<Waker>,
    /// How many times it was woken: a sleeper that saw this count before
    /// it looked at the replies sleeps only while it is unchanged.
    count: u64,
    /// Threads asleep on `came`: without any, waking is one uncontended
    /// lock, no system call.
    sleepers: usize,
}

impl WakerSlot {
    fn state(&self) -> MutexGuard<'_, Wakes> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, waker: &Waker) {
        let mut state = self.state();
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }

    /// How many times it has been woken so far: read before looking at the
    /// replies, and given to [`sleep`](WakerSlot::sleep) after.
    pub(crate) fn count(&self) -> u64 {
        self.state().count
    }

    /// Sleeps until it is woken after `seen` wakes, or until `deadline`;
    /// false if the deadline came first.
    pub(crate) fn sleep(&self, seen: u64, deadline: Instant) -> bool {
        let mut state = self.state();
        state.sleepers += 1;
        while state.count == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .came
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.sleepers -= 1;
        state.count != seen
    }

    fn wake(&self) {
        let mut state = self.state();
        state.count += 1;
        let waker = state.waker.take();
        let sleepers = state.sleepers;
        drop(state);
        if sleepers > 0 {
            self.came.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Call {
    /// A call with its setup frame, the receiver of its replies, and the
    /// slot a waiting future leaves its waker in. With the `tracing`
    /// feature, the span current here is the call's.
    pub(crate) fn new(
        id: u64,
        timeout: Option<Duration>,
        setup: Vec<u8>,
    ) -> (Arc<Call>, Receiver<Reply>, Arc<WakerSlot>) {
        let (replies, receiver) = mpsc::channel();
        let waker = Arc::default();
        let call = Call {
            id,
            timeout,
            quick: Arc::default(),
            cancelled: AtomicBool::new(false),
            setup: Arc::new(setup),
            replies: Some(replies),
            waker: Arc::clone(&waker),
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        };
        (Arc::new(call), receiver, waker)
    }

    /// Hands a reply to the caller; one who went away no longer wants it.
    pub(crate) fn deliver(&self, reply: Reply) {
        if let Some(replies) = &self.replies {
            let _ = replies.send(reply);
        }
        self.waker.wake();
    }
}

impl Drop for Call {
    /// No reply will come any more (the call is over, or its pool ended):
    /// a caller waiting for one looks again, and finds the channel closed.
    fn drop(&mut self) {
        // The channel first, so that the caller it wakes finds it closed.
        self.replies = None;
        self.waker.wake();
    }
}

/// A frame of encoded items of one call.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) call: u64,
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) frame: Arc<Vec<u8>>,
    /// It ran on a worker that broke down (its link closed under it, say)
    /// after running others, which may have caused it: it runs again, and
    /// is charged if that happens to it again.
    pub(crate) suspect: Option<Suspect>,
}

/// What a chunk that runs again under suspicion is suspected of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspect {
    /// Its one item was running, or had just run, when its worker broke
    /// down.
    Item,
    /// Its call was being set up when its worker broke down.
    SetUp,
}

/// What became of a chunk.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The worker ran it: the frame's tail, from `outcomes`, is a batch of
    /// one outcome per item.
    Done {
        first: u64,
        count: u32,
        frame: Received,
        outcomes: usize,
    },
    /// None of its items have a result.
    Failed {
        first: u64,
        count: u32,
        failure: Failure,
    },
}

impl Reply {
    pub(crate) fn first(&self) -> u64 {
        match self {
            Reply::Done { first, .. } | Reply::Failed { first, .. } => *first,
        }
    }

    /// The number of items it covers.
    pub(crate) fn count(&self) -> u32 {
        match self {
            Reply::Done { count, .. } | Reply::Failed { count, .. } => *count,
        }
    }

    /// Reads a worker's reply frame: the call it names, and the reply. A
    /// `Done` reply's outcomes are checked to be a batch of as many as it
    /// says, so that what the caller decodes is whole.
    pub(crate) fn from_frame(frame: Received) -> Result<(u64, Reply), String> {
        let (header, tail) = frame::split::<FromWorker>(frame.body()).map_err(|e| e.to_string())?;
        Ok(match header {
            FromWorker::Done { call, first, count } => {
                let outcomes = Batch::parse(tail)?;
                if outcomes.count() != count {
                    return Err(format!(
                        "a reply for {count} items holds {} outcomes",
                        outcomes.count()
                    ));
                }
                let outcomes = frame.body().len() - tail.len();
                let reply = Reply::Done {
                    first,
                    count,
                    frame,
                    outcomes,
                };
                (call, reply)
            }
            FromWorker::Failed {
                call,
                first,
                count,
                failure,
            } => (
                call,
                Reply::Failed {
                    first,
                    count,
                    failure,
                },
            ),
        })
    }
}
