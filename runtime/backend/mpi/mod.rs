//! Workers on the other ranks of an MPI job. Each rank is one worker of the
//! seam, of [`depth`](crate::backend::Backend::depth) twice its own workers:
//! it serves the frames it is sent through a pool of worker processes of its
//! own (`api::rank`), which enforces timeouts and limits and replaces its
//! workers, and replies with the frames a worker process sends. A task that
//! crashes on a rank costs one item; the rank lives on.
//!
//! Messages are MPI messages between the pool's rank (0) and each other
//! rank: frames without their length prefix ([`FRAME`]), and control
//! messages ([`CONTROL`]: `ToRank`, `FromRank`). Each side receives on a
//! thread of its own, polling with a backoff so that an idle rank burns no
//! core, while it sends from another: a large send, which waits until it is
//! received, therefore never waits for the sender's own receive.

pub(crate) mod environment;

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::{Rank, SimpleCommunicator};
use mpi::traits::{Communicator, Destination, Source};
use serde::Serialize;

use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::Doing;
use crate::platform::Death;
use crate::protocol::codec;
use crate::protocol::frame::Received;
use crate::protocol::message::ToRank;

/// The tag of a frame, which goes to or comes from a rank's workers.
pub(crate) const FRAME: i32 = 1;
/// The tag of a control message (`ToRank`, `FromRank`).
pub(crate) const CONTROL: i32 = 2;

/// The longest an idle receiver sleeps between two looks.
const MOST_IDLE: Duration = Duration::from_millis(2);

/// The world communicator, for this thread.
pub(crate) fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

/// Sends a frame's body to `rank`.
pub(crate) fn send_frame(rank: Rank, body: &[u8]) {
    world().process_at_rank(rank).send_with_tag(body, FRAME);
}

/// Sends a control message to `rank`.
pub(crate) fn send_control(rank: Rank, message: &impl Serialize) {
    let mut bytes = Vec::new();
    codec::encode(message, &mut bytes).expect("a control message always encodes");
    world()
        .process_at_rank(rank)
        .send_with_tag(&bytes[..], CONTROL);
}

/// A message received from a rank.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) rank: Rank,
    pub(crate) tag: i32,
    pub(crate) bytes: Vec<u8>,
}

/// How long to sleep before looking for a message again: nothing at first,
/// then longer and longer while nothing comes, up to [`MOST_IDLE`].
#[derive(Debug, Default)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    /// Something came: look again at once.
    pub(crate) fn reset(&mut self) {
        self.0 = Duration::ZERO;
    }

    /// Nothing came: sleeps, longer each time in a row.
    pub(crate) fn sleep(&mut self) {
        if self.0.is_zero() {
            self.0 = Duration::from_micros(1);
            thread::yield_now();
        } else {
            thread::park_timeout(self.0);
            self.0 = (self.0 * 2).min(MOST_IDLE);
        }
    }
}

/// The next message from `source` (any rank when `None`), if one has come.
pub(crate) fn try_receive(world: &SimpleCommunicator, source: Option<Rank>) -> Option<Incoming> {
    let probed = match source {
        Some(rank) => world.process_at_rank(rank).immediate_matched_probe(),
        None => world.any_process().immediate_matched_probe(),
    }?;
    let (bytes, status) = probed.matched_receive_vec::<u8>();
    Some(Incoming {
        rank: status.source_rank(),
        tag: status.tag(),
        bytes,
    })
}

/// Waits for the next message from `source` until `deadline`.
pub(crate) fn receive_until(source: Rank, deadline: Instant) -> Option<Incoming> {
    let world = world();
    let mut backoff = Backoff::default();
    loop {
        if let Some(incoming) = try_receive(&world, Some(source)) {
            return Some(incoming);
        }
        if Instant::now() >= deadline {
            return None;
        }
        backoff.sleep();
    }
}

/// A remote rank, as one worker of the seam.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteRank {
    pub(crate) rank: Rank,
    /// How many workers its pool runs.
    pub(crate) workers: u32,
}

/// What the receiver thread has received for the dispatcher, and how it
/// wakes it.
struct Inbox {
    queue: Mutex<VecDeque<Incoming>>,
    dispatcher: Thread,
    woken: AtomicBool,
}

impl Wake for Inbox {
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.dispatcher.unpark();
    }
}

/// The pool's side of an MPI job: slot `k` is rank `k + 1`.
pub(crate) struct MpiBackend {
    ranks: Vec<RemoteRank>,
    inbox: Arc<Inbox>,
    stop: Arc<AtomicBool>,
    receiver: Option<JoinHandle<()>>,
}

impl MpiBackend {
    /// A backend over `ranks`, whose pools have started; call it from the
    /// thread that drives the dispatcher, which the receiver wakes.
    pub(crate) fn new(ranks: Vec<RemoteRank>) -> io::Result<Self> {
        let inbox = Arc::new(Inbox {
            queue: Mutex::default(),
            dispatcher: thread::current(),
            woken: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (theirs, their_stop) = (Arc::clone(&inbox), Arc::clone(&stop));
        let receiver = thread::Builder::new()
            .name("forkmap-mpi-receiver".into())
            .spawn(move || receive_for(&theirs, &their_stop))?;
        Ok(MpiBackend {
            ranks,
            inbox,
            stop,
            receiver: Some(receiver),
        })
    }

    fn rank(&self, worker: usize) -> Option<Rank> {
        self.ranks.get(worker).map(|remote| remote.rank)
    }
}

/// The receiver thread: every message from another rank goes to the
/// dispatcher, until `stop`.
fn receive_for(inbox: &Inbox, stop: &AtomicBool) {
    let _receiving = environment::receiving();
    let world = world();
    let mut backoff = Backoff::default();
    while !stop.load(Ordering::Acquire) && !environment::ending() {
        match try_receive(&world, None) {
            Some(incoming) => {
                inbox
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_back(incoming);
                inbox.dispatcher.unpark();
                backoff.reset();
            }
            None => backoff.sleep(),
        }
    }
}

impl Backend for MpiBackend {
    fn start(&mut self, worker: usize) -> io::Result<()> {
        // The ranks' pools were started, and checked, with the pool.
        match self.rank(worker) {
            Some(_) => Ok(()),
            None => Err(io::Error::other("no such rank")),
        }
    }

    fn send(&mut self, worker: usize, frame: Arc<Vec<u8>>) {
        if let Some(rank) = self.rank(worker) {
            send_frame(rank, &frame[4..]);
        }
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) {
        loop {
            let received: Vec<Incoming> = self
                .inbox
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..)
                .collect();
            for incoming in received {
                // Control messages come only in answer to a start.
                if incoming.tag == FRAME && incoming.rank >= 1 {
                    events.push(Event::Frame {
                        worker: incoming.rank as usize - 1,
                        frame: Received::from_body(incoming.bytes),
                    });
                }
            }
            if !events.is_empty() || self.inbox.woken.swap(false, Ordering::AcqRel) {
                return;
            }
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    thread::park_timeout(deadline - now);
                }
                None => thread::park(),
            }
        }
    }

    fn doing(&self, _worker: usize) -> Doing {
        Doing::Idle
    }

    fn ask_to_stop(&mut self, worker: usize, call: u64) {
        if let Some(rank) = self.rank(worker) {
            send_control(rank, &ToRank::Stop { call });
        }
    }

    /// Ranks enforce their own limits: their pools kill their workers.
    fn can_kill(&self) -> bool {
        false
    }

    fn kill(&mut self, _worker: usize) {}

    fn depth(&self, worker: usize) -> usize {
        self.ranks
            .get(worker)
            .map_or(1, |remote| 2 * remote.workers.max(1) as usize)
    }

    fn memory_growth(&self, _worker: usize) -> Option<u64> {
        None
    }

    fn end(&mut self, worker: usize, _kill: bool) -> Ending {
        if let Some(rank) = self.rank(worker) {
            send_control(rank, &ToRank::Release);
        }
        Ending {
            death: Death::Exit(0),
            ..Ending::unknown()
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::clone(&self.inbox) as Arc<dyn Wake>
    }
}

impl Drop for MpiBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(receiver) = self.receiver.take() {
            receiver.thread().unpark();
            let _ = receiver.join();
        }
        environment::release_pool();
    }
}
