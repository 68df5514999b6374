//! What a rank other than 0 of an MPI job does, inside
//! [`init`](crate::init), until the job ends: it serves the frames rank 0
//! sends through a pool of worker processes of its own, and sends their
//! replies back. Its pool enforces timeouts and limits and replaces its
//! workers, so a task that crashes costs one item and the rank lives on.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};
use std::thread::{self, Thread};

use crate::api::engine::process_dispatcher;
use crate::backend::mpi::{environment, send_control, send_frame, try_receive, world, Backoff};
use crate::backend::mpi::{CONTROL, FRAME};
use crate::dispatch::scheduler::WorkerOptions;
use crate::dispatch::work::{Call, Chunk, Reply, WakerSlot};
use crate::dispatch::{Dispatcher, Link, Route};
use crate::platform::code;
use crate::protocol::batch::Batch;
use crate::protocol::codec;
use crate::protocol::entry;
use crate::protocol::frame;
use crate::protocol::message::{Failure, FromRank, FromWorker, Refusal, ToRank, ToWorker};

/// The rank the pool runs on.
const POOL_RANK: i32 = 0;

/// Serves rank 0 until the job ends; never returns.
pub(crate) fn serve() -> ! {
    let relay = Arc::new(Relay::default());
    let sender = {
        let relay = Arc::clone(&relay);
        thread::Builder::new()
            .name("forkmap-mpi-sender".into())
            .spawn(move || relay.send_replies())
            .expect("a thread to send replies")
    };
    relay.state().sender = Some(sender.thread().clone());
    let world = world();
    let mut backoff = Backoff::default();
    let mut pool: Option<Local> = None;
    loop {
        let Some(incoming) = try_receive(&world, Some(POOL_RANK)) else {
            backoff.sleep();
            continue;
        };
        backoff.reset();
        match incoming.tag {
            FRAME => relay.take_frame(pool.as_mut(), incoming.bytes),
            CONTROL => match codec::decode::<ToRank>(&incoming.bytes) {
                Ok(ToRank::Start {
                    workers,
                    max_tasks,
                    memory_limit,
                    ring_size,
                    init,
                }) => {
                    relay.forget_all();
                    pool = None;
                    let workers = workers.map_or_else(
                        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
                        |n| n as usize,
                    );
                    let options = WorkerOptions {
                        count: workers,
                        max_tasks,
                        init: init.map(Arc::new),
                        memory_limit,
                        ring_size: usize::try_from(ring_size).unwrap_or(usize::MAX),
                    };
                    let answer = match Local::start(options) {
                        Ok(local) => {
                            relay.state().link = local.route.link();
                            pool = Some(local);
                            FromRank::Started {
                                build: code::build_identity(),
                                remotes: entry::remotes_identity(),
                                workers: workers as u32,
                            }
                        }
                        Err(e) => FromRank::Failed(e.to_string()),
                    };
                    send_control(POOL_RANK, &answer);
                }
                Ok(ToRank::Stop { call }) => {
                    if let Some(link) = pool.as_ref().and_then(|local| local.route.link()) {
                        link.close(call);
                    }
                }
                Ok(ToRank::Release) => {
                    relay.forget_all();
                    pool = None;
                }
                // The job ends (or rank 0 is not speaking this protocol).
                Ok(ToRank::Exit) | Err(_) => {
                    relay.stop.store(true, Ordering::Release);
                    sender.thread().unpark();
                    drop(pool.take());
                    let _ = sender.join();
                    environment::finalize();
                    std::process::exit(0);
                }
            },
            _ => {}
        }
    }
}

/// This rank's own pool of worker processes.
struct Local {
    route: Route,
    _dispatcher: Dispatcher,
}

impl Local {
    fn start(options: WorkerOptions) -> Result<Self, crate::Error> {
        let dispatcher = process_dispatcher(options)?;
        let route = dispatcher.route()?;
        Ok(Local {
            route,
            _dispatcher: dispatcher,
        })
    }
}

/// The calls this rank serves, shared by the thread that takes frames and
/// the one that sends replies.
#[derive(Default)]
struct Relay {
    state: Mutex<RelayState>,
    /// Held while replies are sent, and while a pool is forgotten: replies
    /// of a pool are sent before this rank says that another has started
    /// (rank 0 drops what comes before that answer), or not at all.
    sending: Mutex<()>,
    stop: AtomicBool,
}

#[derive(Default)]
struct RelayState {
    calls: HashMap<u64, Served>,
    /// The call whose setup came last: the pool's rank sends a call's setup
    /// again before its chunks whenever another call's came in between.
    current: Option<u64>,
    link: Option<Arc<Link>>,
    sender: Option<Thread>,
    /// Counts the pools forgotten: replies taken in before are not sent.
    generation: u64,
}

/// A call the rank serves: where its replies come, and its chunks not yet
/// replied to in full.
struct Served {
    replies: Receiver<Reply>,
    waker: Arc<WakerSlot>,
    /// By first index: one past the last item, and the next item whose reply
    /// goes to rank 0, and replies that came before it. Rank 0 takes each
    /// chunk's replies in order; this rank's pool may send them out of
    /// order, after one of its workers died.
    chunks: BTreeMap<u64, InOrder>,
}

struct InOrder {
    end: u64,
    next: u64,
    early: BTreeMap<u64, Reply>,
}

/// Wakes the thread that sends replies.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl Relay {
    fn state(&self) -> MutexGuard<'_, RelayState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget_all(&self) {
        let _sending = self.sending.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.state();
        state.calls.clear();
        state.current = None;
        state.link = None;
        state.generation += 1;
    }

    /// Hands a frame from rank 0 to this rank's pool.
    fn take_frame(&self, pool: Option<&mut Local>, body: Vec<u8>) {
        let Some(pool) = pool else { return };
        let Ok((header, tail)) = frame::split::<ToWorker<'_>>(&body) else {
            return;
        };
        match header {
            ToWorker::Call { call, timeout, .. } => {
                let mut state = self.state();
                state.current = Some(call);
                if state.calls.contains_key(&call) {
                    return;
                }
                let (opened, replies, waker) = Call::new(call, timeout, framed(&body));
                state.calls.insert(
                    call,
                    Served {
                        replies,
                        waker,
                        chunks: BTreeMap::new(),
                    },
                );
                // Calls that are done and not current are forgotten.
                let current = state.current;
                state
                    .calls
                    .retain(|&id, served| Some(id) == current || !served.chunks.is_empty());
                if let Some(sender) = &state.sender {
                    // So that it waits for this call's replies too.
                    sender.unpark();
                }
                drop(state);
                pool.route.open(opened);
            }
            ToWorker::Chunk { call, first } => {
                let count = match Batch::parse(tail) {
                    Ok(items) => items.count(),
                    Err(_) => return,
                };
                let end = first + u64::from(count);
                {
                    let mut state = self.state();
                    let Some(served) = state.calls.get_mut(&call) else {
                        drop(state);
                        let reason = "the rank was not sent this call's function".to_owned();
                        let failure = Failure::Refused(Refusal::Unrunnable(reason));
                        return send_failure(call, first, count, failure);
                    };
                    served.chunks.insert(
                        first,
                        InOrder {
                            end,
                            next: first,
                            early: BTreeMap::new(),
                        },
                    );
                    // So that it looks at the call again: if the call was
                    // stopped, no reply will wake it for this chunk.
                    if let Some(sender) = &state.sender {
                        sender.unpark();
                    }
                }
                pool.route.run(Chunk {
                    call,
                    first,
                    count,
                    frame: Arc::new(framed(&body)),
                    suspect: None,
                });
            }
            ToWorker::Init { .. } => {}
        }
    }

    /// The thread that sends the replies of this rank's pool to rank 0.
    fn send_replies(&self) {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        while !self.stop.load(Ordering::Acquire) {
            let mut ready = Vec::new();
            let generation = {
                let mut state = self.state();
                let current = state.current;
                let mut finished = Vec::new();
                for (&id, served) in state.calls.iter_mut() {
                    served.waker.set(&waker);
                    loop {
                        match served.replies.try_recv() {
                            Ok(reply) => served.take(id, reply, &mut ready),
                            Err(TryRecvError::Empty) => break,
                            // The call was stopped: what the pool dropped
                            // unreplied, rank 0 must hear of.
                            Err(TryRecvError::Disconnected) => {
                                served.cancel_rest(id, &mut ready);
                                break;
                            }
                        }
                    }
                    if served.chunks.is_empty() && Some(id) != current {
                        finished.push(id);
                    }
                }
                for id in finished {
                    state.calls.remove(&id);
                    if let Some(link) = &state.link {
                        link.detach(id);
                    }
                }
                state.generation
            };
            if ready.is_empty() {
                thread::park();
                continue;
            }
            let _sending = self.sending.lock().unwrap_or_else(PoisonError::into_inner);
            if self.state().generation != generation {
                // Their pool was forgotten meanwhile.
                continue;
            }
            for (call, reply) in ready {
                send_reply(call, reply);
            }
        }
    }
}

impl Served {
    /// Takes in a reply of this rank's pool: it goes to `ready` in its
    /// chunk's order.
    fn take(&mut self, call: u64, reply: Reply, ready: &mut Vec<(u64, Reply)>) {
        let first = reply.first();
        let Some((&start, order)) = self.chunks.range_mut(..=first).next_back() else {
            return;
        };
        order.early.insert(first, reply);
        while let Some(next) = order.early.remove(&order.next) {
            order.next += u64::from(next.count());
            ready.push((call, next));
        }
        if order.next >= order.end {
            self.chunks.remove(&start);
        }
    }

    /// Answers every item of its chunks not replied to as cancelled, with
    /// the replies that came early in their places, in order.
    fn cancel_rest(&mut self, call: u64, ready: &mut Vec<(u64, Reply)>) {
        for order in std::mem::take(&mut self.chunks).into_values() {
            let InOrder {
                end,
                mut next,
                mut early,
            } = order;
            while next < end {
                if let Some(reply) = early.remove(&next) {
                    next += u64::from(reply.count());
                    ready.push((call, reply));
                    continue;
                }
                let gap_end = early.range(next..).next().map_or(end, |(&first, _)| first);
                let count = u32::try_from(gap_end - next).unwrap_or(u32::MAX);
                ready.push((
                    call,
                    Reply::Failed {
                        first: next,
                        count,
                        failure: Failure::Cancelled,
                    },
                ));
                next += u64::from(count);
            }
        }
    }
}

/// A frame's body with its length prefix, as a pool's chunks and setups are.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(body.len() + 4);
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(body);
    framed
}

/// Sends a reply of this rank's pool to rank 0, as a worker's frame.
fn send_reply(call: u64, reply: Reply) {
    match reply {
        Reply::Done { frame, .. } => send_frame(POOL_RANK, frame.body()),
        Reply::Failed {
            first,
            count,
            failure,
        } => send_failure(call, first, count, failure),
    }
}

fn send_failure(call: u64, first: u64, count: u32, failure: Failure) {
    let mut reply = Vec::new();
    frame::begin(
        &mut reply,
        &FromWorker::Failed {
            call,
            first,
            count,
            failure,
        },
    );
    if frame::finish(&mut reply).is_ok() {
        send_frame(POOL_RANK, &reply[4..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(first: u64, count: u32, failure: Failure) -> Reply {
        Reply::Failed {
            first,
            count,
            failure,
        }
    }

    /// What rank 0 hears of a chunk of items 0..10 whose items 0 and 1
    /// were sent, whose items 5 and 6 came back early, when its call stops.
    #[test]
    fn a_stopped_call_s_unreplied_items_are_answered_in_order() {
        let (_, replies) = std::sync::mpsc::channel();
        let mut early = BTreeMap::new();
        early.insert(
            5,
            failed(5, 2, Failure::Refused(Refusal::Unrunnable("early".into()))),
        );
        let mut served = Served {
            replies,
            waker: Arc::default(),
            chunks: BTreeMap::from([(
                0,
                InOrder {
                    end: 10,
                    next: 2,
                    early,
                },
            )]),
        };
        let mut ready = Vec::new();
        served.cancel_rest(7, &mut ready);
        let heard: Vec<(u64, u64, u32, bool)> = ready
            .iter()
            .map(|(call, reply)| {
                let cancelled = matches!(
                    reply,
                    Reply::Failed {
                        failure: Failure::Cancelled,
                        ..
                    }
                );
                (*call, reply.first(), reply.count(), cancelled)
            })
            .collect();
        assert_eq!(heard, [(7, 2, 3, true), (7, 5, 2, false), (7, 7, 3, true)]);
        assert!(served.chunks.is_empty());
    }
}
