//! The seam between the dispatcher and the workers: one trait,
//! [`Backend`], and one folder or file per kind of worker.
//!
//! Above the seam, the dispatcher (`crate::dispatch`) decides which worker
//! runs what, charges deaths and enforces limits; it knows nothing of
//! sockets, processes or threads. Below it, a backend starts workers,
//! carries frames to and from them, and says when one has ended. Adding a
//! kind of worker is one new module implementing [`Backend`], and one line
//! in `api::engine`, the one place a pool's backend is chosen.
//!
//! - [`serial`]: one worker that runs in the caller's thread.
//! - [`thread`]: worker threads, each behind a socket pair.
//! - [`process`]: forked worker processes, each behind a socket pair.

mod channel;
#[cfg(feature = "mpi")]
pub(crate) mod mpi;
pub(crate) mod process;
pub(crate) mod serial;
pub(crate) mod thread;

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::platform::board::{Doing, Item, Posted};
use crate::platform::Death;
use crate::protocol::frame::Received;

/// What happened to a worker, as [`Backend::wait`] reports it.
#[derive(Debug)]
pub(crate) enum Event {
    /// Worker `worker` sent this frame.
    Frame { worker: usize, frame: Received },
    /// Worker `worker` has ended, or can no longer be reached; every frame
    /// it sent before has been reported. The dispatcher calls
    /// [`Backend::end`] next.
    Ended { worker: usize },
    /// Worker `worker` sent bytes that are not a frame, for `reason`; nothing
    /// more is read from it, and the dispatcher ends it.
    Garbled { worker: usize, reason: String },
    /// Worker `worker` can no longer wake the dispatcher (a task closed a
    /// descriptor of its link, or put another file in its place). Its
    /// replies still come, looked for every so often; the dispatcher
    /// replaces it once it holds no work.
    Deaf { worker: usize },
}

/// How a worker ended, from [`Backend::end`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    /// How it ended.
    pub(crate) death: Death,
    /// What it had last posted on its board: the item it was running, if any.
    pub(crate) doing: Doing,
    /// The last item it started, which it may have finished.
    pub(crate) last: Option<Item>,
    /// Its board was left mid-post: which item it ran is not known.
    pub(crate) torn: bool,
    /// Its link closed while it lived on, and it was killed: which of its
    /// items closed the link is not known.
    pub(crate) lingered: bool,
}

impl Ending {
    /// How a worker ended, and what its board said.
    pub(crate) fn new(death: Death, posted: Posted) -> Self {
        Ending {
            death,
            doing: posted.doing,
            last: posted.last,
            torn: posted.torn,
            lingered: false,
        }
    }

    /// The end of a worker there was nothing to say of.
    pub(crate) fn unknown() -> Self {
        Ending::new(Death::Unknown, Posted::NOTHING)
    }
}

/// Wakes a [`Backend::wait`] in progress, from any thread.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// A kind of worker, as the dispatcher drives it.
///
/// Workers live in numbered slots, `0..n`. A backend keeps, per slot, at most
/// one worker, the channel to it, and the board where it posts what it does.
///
/// The contract, which every backend keeps:
///
/// - [`start`](Backend::start) puts a new worker in an empty slot. An error
///   leaves the slot empty; the dispatcher tries again when work comes.
/// - [`send`](Backend::send) hands a frame to a worker. Frames reach it
///   whole and in the order sent, however the transport cuts them; sending
///   never blocks (a backend queues what its transport does not take yet,
///   and writes it while waiting). Sending to a worker that is gone is not an
///   error: its [`Event::Ended`] comes.
/// - [`wait`](Backend::wait) returns what happened since the last call:
///   frames in the order each worker sent them, then a worker's end
///   ([`Event::Ended`] or [`Event::Garbled`], once) after its last frame. It waits until something happens, `deadline` passes, or
///   [`Wake::wake`] is called; it may return early with nothing.
/// - A process's death is seen from the process itself (its pidfd, where
///   the system has them), not only from its channel closing, so a child
///   that a task left behind holding the channel open cannot hide it. (A
///   thread ends only by closing its channel.)
/// - [`end`](Backend::end) empties a slot: after [`Event::Ended`], or to
///   retire a worker, or at shut-down. It says how the worker ended, what
///   its board showed last (read once the worker is gone, where it can be
///   waited for), and whether it *lingered*: lived on after its link closed
///   and had to be killed. With `kill`, a worker still running is stopped
///   first where the backend can stop it; a worker that cannot be stopped (a
///   thread) is left to finish and is forgotten.
/// - [`ask_to_stop`](Backend::ask_to_stop) asks a worker to stop a call's
///   items between items: it then fails the rest of its chunks of that call
///   as cancelled.
/// - [`kill`](Backend::kill) stops a worker at once, where
///   [`can_kill`](Backend::can_kill) says it can; its end comes as an event.
/// - Replies to the chunks a worker holds come in order for each chunk; a
///   worker of [`depth`](Backend::depth) more than one may interleave the
///   replies of its chunks.
pub(crate) trait Backend {
    /// Starts a worker in the empty slot `worker`.
    fn start(&mut self, worker: usize) -> io::Result<()>;

    /// Hands `frame` (length prefix and body) to the worker in slot `worker`.
    fn send(&mut self, worker: usize, frame: Arc<Vec<u8>>);

    /// Waits as the contract says and appends what happened to `events`.
    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>);

    /// What the worker in slot `worker` last posted on its board.
    fn doing(&self, worker: usize) -> Doing;

    /// Asks the worker in slot `worker` to stop running the items of
    /// `call`, between items (its call was cancelled).
    fn ask_to_stop(&mut self, worker: usize, call: u64);

    /// Whether the dispatcher enforces timeouts, memory limits and
    /// cancellations here by killing workers: processes can be killed;
    /// threads and the caller cannot (their pools take no limits), and a
    /// backend whose workers enforce them themselves says no.
    fn can_kill(&self) -> bool;

    /// Stops the worker in slot `worker` at once, and whatever its tasks
    /// started (a process and its process group). Called only where
    /// [`can_kill`](Backend::can_kill) says it can be.
    fn kill(&mut self, worker: usize);

    /// How many chunks the worker in slot `worker` runs at once: one for a
    /// process or a thread; more for a worker that is itself a pool.
    fn depth(&self, _worker: usize) -> usize {
        1
    }

    /// How many bytes the resident memory of its own (not shared with other
    /// processes) of the worker in slot `worker` has grown by since it
    /// started, where the backend can tell.
    fn memory_growth(&self, worker: usize) -> Option<u64>;

    /// Empties slot `worker`, as the contract says.
    fn end(&mut self, worker: usize, kill: bool) -> Ending;

    /// What wakes [`wait`](Backend::wait) from another thread.
    fn waker(&self) -> Arc<dyn Wake>;
}
