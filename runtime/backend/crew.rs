//! The workers a dispatcher keeps, as the dispatcher sees them: a process
//! or thread, its channel, and the chunks it holds.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::backend::reply::{Call, Chunk, Failure, Reply};
use crate::platform::board::Doing;
use crate::platform::Death;
use crate::platform::{self, Child, Private, SharedBoard};
use crate::protocol::frame::{Inbox, Received, Refusal};
use crate::worker;

use super::held::{Cause, Held};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Forked worker processes.
    Process,
    /// Threads of this process.
    Thread,
}

/// The workers a dispatcher keeps.
#[derive(Debug, Clone)]
pub(crate) struct Crew {
    pub(crate) kind: Kind,
    pub(crate) workers: usize,
    /// Replace a worker once it has been given this many items.
    pub(crate) max_tasks: Option<u64>,
    /// The `Init` frame every new worker is sent first.
    pub(crate) init: Option<Arc<Vec<u8>>>,
    /// How many bytes each worker process's resident memory may grow by.
    pub(crate) memory_limit: Option<u64>,
}

/// A chunk that ran for less than this is quick: its worker may hold the
/// call's next chunk behind the one it runs, so that it never waits on the
/// parent in between. A slower call's chunk goes only to a worker with
/// nothing to run, so that it never waits behind a slow item while another
/// worker is idle; the wait for the parent is then small beside the chunk.
const QUICK_CHUNK: Duration = Duration::from_millis(10);

/// A frame on its way to a worker.
pub(super) struct Outgoing {
    pub(super) bytes: Arc<Vec<u8>>,
    pub(super) written: usize,
}

/// What a worker runs in.
pub(super) enum Body {
    Process(Child),
    Thread(JoinHandle<i32>),
}

impl Body {
    /// Ends the worker, whose channel is closed, and says how it ended. A
    /// process that does not exit by itself, or at all when `kill` is set,
    /// is killed; a thread that may still be running a task is left to
    /// finish it, since a thread cannot be killed.
    pub(super) fn end(self, kill: bool) -> Death {
        match self {
            Body::Process(child) => child.reap(kill),
            Body::Thread(thread) if !kill => thread.join().map_or(Death::Unknown, Death::Exit),
            Body::Thread(_) => Death::Unknown,
        }
    }

    /// Kills a process at once; a thread cannot be killed.
    pub(super) fn kill(&self) {
        if let Body::Process(child) = self {
            child.kill();
        }
    }

    /// A process's resident memory, in bytes.
    pub(super) fn resident(&self) -> Option<u64> {
        match self {
            Body::Process(child) => child.resident(),
            Body::Thread(_) => None,
        }
    }
}

pub(super) struct Worker {
    pub(super) body: Body,
    pub(super) channel: Private,
    pub(super) inbox: Inbox,
    pub(super) outbox: VecDeque<Outgoing>,
    /// The chunks sent, oldest first; replies come in this order.
    pub(super) held: VecDeque<Held>,
    /// The call whose closure the worker has built.
    pub(super) loaded: Option<u64>,
    /// How many items the worker has been given.
    pub(super) given: u64,
    /// It takes no more chunks, and is replaced once it has none.
    pub(super) retiring: bool,
    /// Writing failed: the worker is gone, and its end-of-file is coming.
    pub(super) broken: bool,
    /// Where the worker posts what it is doing.
    pub(super) board: Arc<SharedBoard>,
    /// Why the dispatcher killed the worker, if it did.
    pub(super) killed: Option<Cause>,
    /// Its resident memory when it started, in bytes.
    pub(super) resident_at_start: u64,
    /// When the chunk at the front of `held` reached the front: about when
    /// the worker started it.
    pub(super) front_since: Instant,
    /// Whether it has ever replied: a worker that dies before it has is
    /// charged with its chunk even when it was not running an item, so that
    /// a worker that cannot start at all does not make the pool respawn it
    /// forever.
    pub(super) replied: bool,
}

impl Worker {
    pub(super) fn spawn(crew: &Crew) -> std::io::Result<Self> {
        let (body, channel, board) = match crew.kind {
            Kind::Process => {
                let spawned = platform::spawn_worker(worker::run)?;
                let board = Arc::new(spawned.board);
                (Body::Process(spawned.child), spawned.channel, board)
            }
            Kind::Thread => {
                let board = Arc::new(SharedBoard::new()?);
                let (ours, theirs) = platform::private_pair()?;
                theirs.stream().set_nonblocking(false)?;
                let theirs_board = Arc::clone(&board);
                let thread = thread::Builder::new()
                    .name("forkmap-worker".into())
                    .spawn(move || worker::run(theirs.stream(), &theirs_board))?;
                (Body::Thread(thread), ours, board)
            }
        };
        // Read only where a limit needs it: it costs a file read per worker.
        let resident_at_start = match crew.memory_limit {
            Some(_) => body.resident().unwrap_or(0),
            None => 0,
        };
        let mut worker = Worker {
            body,
            channel,
            inbox: Inbox::new(),
            outbox: VecDeque::new(),
            held: VecDeque::new(),
            loaded: None,
            given: 0,
            retiring: false,
            broken: false,
            board,
            killed: None,
            resident_at_start,
            front_since: Instant::now(),
            replied: false,
        };
        if let Some(init) = &crew.init {
            worker.outbox.push_back(Outgoing {
                bytes: Arc::clone(init),
                written: 0,
            });
        }
        Ok(worker)
    }

    /// Whether the worker can take `chunk` without going past `max_tasks`.
    /// A fresh worker takes any chunk, so that no chunk is left unrun.
    pub(super) fn fits(&self, chunk: &Chunk, max_tasks: Option<u64>) -> bool {
        max_tasks.is_none_or(|max| self.given == 0 || self.given + u64::from(chunk.count) <= max)
    }

    /// Whether the worker can take a chunk: it has none, or it runs a chunk
    /// of a quick call that started only just now, behind which it may hold
    /// one more (of a quick call too).
    pub(super) fn has_room(&self) -> bool {
        if self.broken || self.retiring {
            return false;
        }
        match self.held.len() {
            0 => true,
            1 => {
                self.held[0].call.quick.load(Ordering::Relaxed)
                    && self.front_since.elapsed() < QUICK_CHUNK
            }
            _ => false,
        }
    }

    pub(super) fn give(&mut self, call: Arc<Call>, chunk: Chunk) {
        if self.loaded != Some(call.id) {
            self.loaded = Some(call.id);
            self.outbox.push_back(Outgoing {
                bytes: Arc::clone(&call.setup),
                written: 0,
            });
        }
        self.outbox.push_back(Outgoing {
            bytes: Arc::clone(&chunk.frame),
            written: 0,
        });
        self.given += u64::from(chunk.count);
        if self.held.is_empty() {
            self.front_since = Instant::now();
        }
        self.held.push_back(Held {
            call,
            chunk,
            done: 0,
            upto: 0,
        });
    }

    /// Writes what the channel takes without blocking.
    pub(super) fn flush(&mut self) {
        let mut stream = self.channel.stream();
        while let Some(front) = self.outbox.front_mut() {
            match stream.write(&front.bytes[front.written..]) {
                Ok(n) => {
                    front.written += n;
                    if front.written == front.bytes.len() {
                        self.outbox.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// Kills the worker, for `why`, while it is `doing` something; its
    /// end-of-file comes next, and the dispatcher charges it.
    pub(super) fn kill(&mut self, doing: Doing, why: Failure) {
        self.body.kill();
        self.killed = Some(Cause::Killed { doing, why });
    }

    /// Hands one reply frame to the call of the chunk at the front of
    /// `held`, which it must continue.
    pub(super) fn settle(&mut self, frame: Received) -> Result<(), String> {
        self.replied = true;
        let held = self.held.front_mut().ok_or("a reply came for no chunk")?;
        let (call, reply, upto) = Reply::from_frame(frame)?;
        let expected = held.chunk.first + u64::from(held.done);
        let left = held.chunk.count - held.done;
        if (call, reply.first()) != (held.call.id, expected) || reply.count() > left {
            return Err(format!(
                "a reply for call {call} items {}..+{} came where call {} item {expected} \
                 (of {left} more) was expected",
                reply.first(),
                reply.count(),
                held.call.id,
            ));
        }
        held.done += reply.count();
        if let Some(upto) = upto {
            held.upto = upto as usize;
        }
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
            // next time in case the refusal was transient. An item that
            // does not decode leaves the closure, and its state, as it is.
            self.loaded = None;
        }
        held.call.deliver(reply);
        if held.done == held.chunk.count {
            // The chunk ran from when it reached the front until now.
            let now = Instant::now();
            let quick = now - self.front_since < QUICK_CHUNK;
            held.call.quick.store(quick, Ordering::Relaxed);
            self.front_since = now;
            self.held.pop_front();
        }
        Ok(())
    }
}
