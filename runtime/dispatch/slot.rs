//! A worker as the dispatcher sees it, whatever the backend: the chunks it
//! holds, the call whose closure it has built, and why it was killed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dispatch::held::{Cause, Held};
use crate::dispatch::work::{Call, Chunk, Reply};
use crate::platform;
use crate::protocol::frame::Received;
use crate::protocol::message::{Failure, Refusal};

/// A chunk that ran for less than this is quick: its worker may hold the
/// call's next chunk behind the one it runs, so that it never waits on the
/// parent in between. A slower call's chunk goes only to a worker with
/// nothing to run, so that it never waits behind a slow item while another
/// worker is idle; the wait for the parent is then small beside the chunk.
const QUICK_CHUNK: Duration = Duration::from_millis(10);
const QUICK_NS: u64 = QUICK_CHUNK.as_nanos() as u64;

/// The dispatcher's record of one worker.
pub(super) struct Slot {
    /// The chunks sent, oldest first; replies come in this order.
    held: VecDeque<Held>,
    /// The call whose closure the worker has built.
    loaded: Option<u64>,
    /// How many items the worker has been given.
    given: u64,
    /// It takes no more chunks, and is replaced once it has none.
    retiring: bool,
    /// Why the dispatcher killed the worker, if it did.
    killed: Option<Cause>,
    /// When the chunk at the front of `held` reached the front: when it was
    /// handed over, or when the one before it ended (`platform::monotonic_ns`).
    front_since: u64,
    /// A cancelled call whose items the worker was asked to stop, and when
    /// it is killed if it still holds one.
    stopping: Option<(u64, Instant)>,
    /// Whether it has ever replied: a worker that dies before it has is
    /// charged with its chunk even when it was not running an item, so that
    /// a worker that cannot start at all does not make the pool respawn it
    /// forever.
    replied: bool,
}

impl Slot {
    pub(super) fn new() -> Self {
        Slot {
            held: VecDeque::new(),
            loaded: None,
            given: 0,
            retiring: false,
            killed: None,
            front_since: platform::monotonic_ns(),
            stopping: None,
            replied: false,
        }
    }

    /// Whether it holds a chunk of `call`.
    pub(super) fn holds(&self, call: u64) -> bool {
        self.held.iter().any(|held| held.call.id == call)
    }

    /// Records that the worker was asked to stop `call`'s items, and is to
    /// be killed at `deadline` if it still holds one.
    pub(super) fn stop(&mut self, call: u64, deadline: Instant) {
        self.stopping = Some((call, deadline));
    }

    /// When the worker is to be killed for still running a cancelled call,
    /// if it is.
    pub(super) fn stop_deadline(&mut self) -> Option<Instant> {
        let (call, deadline) = self.stopping?;
        if self.holds(call) {
            Some(deadline)
        } else {
            self.stopping = None;
            None
        }
    }

    /// The chunk the worker runs now, if any.
    pub(super) fn running(&self) -> Option<&Held> {
        self.held.front()
    }

    pub(super) fn is_idle(&self) -> bool {
        self.held.is_empty()
    }

    pub(super) fn held_count(&self) -> usize {
        self.held.len()
    }

    pub(super) fn loaded(&self) -> Option<u64> {
        self.loaded
    }

    /// Whether it has been killed, and why.
    pub(super) fn killed(&self) -> Option<&Cause> {
        self.killed.as_ref()
    }

    /// Whether it should be replaced now: it is retiring and holds nothing.
    pub(super) fn is_done(&self) -> bool {
        self.retiring && self.held.is_empty()
    }

    /// When the chunk it runs was handed over, or the one before it ended
    /// (`platform::monotonic_ns`): an item's time counts from then at the
    /// earliest, so that a worker that never starts it (stopped, stuck
    /// reading) still times out.
    pub(super) fn handed_over(&self) -> u64 {
        self.front_since
    }

    /// Takes no more chunks; replaced once it has none.
    pub(super) fn retire(&mut self) {
        self.retiring = true;
    }

    /// Whether the worker can take `chunk` without going past `max_tasks`.
    /// A fresh worker takes any chunk, so that no chunk is left unrun.
    pub(super) fn fits(&self, chunk: &Chunk, max_tasks: Option<u64>) -> bool {
        max_tasks.is_none_or(|max| self.given == 0 || self.given + u64::from(chunk.count) <= max)
    }

    /// Whether the worker, which runs `depth` chunks at once, can take a
    /// chunk: it runs fewer, or it runs a chunk of a quick call that started
    /// only just now, behind which it may hold one more (of a quick call
    /// too).
    pub(super) fn has_room(&self, depth: usize) -> bool {
        if self.retiring || self.killed.is_some() {
            return false;
        }
        match self.held.len() {
            held if held < depth => true,
            held if held == depth => {
                self.held[0].call.quick.load(Ordering::Relaxed)
                    && platform::monotonic_ns().saturating_sub(self.front_since) < QUICK_NS
            }
            _ => false,
        }
    }

    /// Records `chunk` as given to the worker, and returns the frames to send
    /// it: the call's setup first, unless its closure is built already.
    pub(super) fn give(&mut self, call: Arc<Call>, chunk: Chunk) -> Vec<Arc<Vec<u8>>> {
        let mut frames = Vec::with_capacity(2);
        if self.loaded != Some(call.id) {
            self.loaded = Some(call.id);
            frames.push(Arc::clone(&call.setup));
        }
        frames.push(Arc::clone(&chunk.frame));
        self.given += u64::from(chunk.count);
        if self.held.is_empty() {
            self.front_since = platform::monotonic_ns();
        }
        self.held.push_back(Held {
            call,
            chunk,
            done: 0,
        });
        frames
    }

    /// Records that the dispatcher killed the worker for `cause`.
    pub(super) fn mark_killed(&mut self, cause: Cause) {
        self.killed = Some(cause);
    }

    /// Hands one reply frame to the call of the chunk it continues: the one
    /// at the front of `held` (or, for a worker that runs several at once,
    /// any of them), whose replies come in order.
    pub(super) fn settle(&mut self, frame: Received) -> Result<(), String> {
        self.replied = true;
        let (call, reply) = Reply::from_frame(frame)?;
        let continues = |held: &Held| {
            held.call.id == call
                && held.chunk.first + u64::from(held.done) == reply.first()
                && reply.count() <= held.chunk.count - held.done
        };
        let Some(position) = self.held.iter().position(continues) else {
            return Err(match self.held.front() {
                Some(held) => format!(
                    "a reply for call {call} items {}..+{} came where call {} item {} was \
                     expected",
                    reply.first(),
                    reply.count(),
                    held.call.id,
                    held.chunk.first + u64::from(held.done),
                ),
                None => "a reply came for no chunk".into(),
            });
        };
        let held = &mut self.held[position];
        event!(
            trace,
            parent: &held.call.span,
            first = reply.first(),
            count = reply.count(),
            "reply from a worker"
        );
        held.done += reply.count();
        let setup_refused = matches!(
            reply,
            Reply::Failed {
                failure: Failure::Refused(
                    Refusal::FactoryPanicked(_) | Refusal::Unrunnable(_) | Refusal::Initializer(_)
                ),
                ..
            }
        );
        if setup_refused && self.loaded == Some(call) {
            // A refused setup is remembered by the worker; send it again
            // next time in case the refusal was transient.
            self.loaded = None;
        }
        held.call.deliver(reply);
        if held.done == held.chunk.count {
            // The chunk ran from when it reached the front until now.
            let now = platform::monotonic_ns();
            let quick = now.saturating_sub(self.front_since) < QUICK_NS;
            held.call.quick.store(quick, Ordering::Relaxed);
            self.front_since = now;
            self.held.remove(position);
        }
        Ok(())
    }

    /// Empties the record of a worker that has ended: the chunks it held,
    /// the one it ran first, and why it was killed.
    pub(super) fn into_held(self) -> (VecDeque<Held>, Option<Cause>, bool) {
        (self.held, self.killed, self.replied)
    }
}
