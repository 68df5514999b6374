//! The dispatcher: one thread per pool that owns the worker processes and
//! moves frames between them and the calls in progress.
//!
//! It only sees bytes: calls encode their items and decode their results on
//! the caller's thread. The dispatcher keeps up to [`DEPTH`] chunks on each
//! worker, sends a call's setup frame once per worker per call, notices a
//! worker's death by its channel's end-of-file, charges the death to the
//! chunk that worker was running, and forks a replacement.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use nix::unistd::Pid;

use crate::error::{Death, Error};
use crate::frame::{self, Fill, FromWorker, Inbox, Received, Refusal};
use crate::platform::{self, Private};
use crate::worker;

/// How many chunks a worker holds at once: one running, one waiting in its
/// channel, so it never waits on the parent between chunks.
const DEPTH: usize = 2;

/// A call in progress: one function over any number of items.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: u64,
    /// The `Call` frame that builds the closure in a worker.
    pub(crate) setup: Arc<Vec<u8>>,
    pub(crate) replies: Sender<Reply>,
}

/// A frame of encoded items of one call.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) call: u64,
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) frame: Arc<Vec<u8>>,
}

/// What became of a chunk.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The worker ran it: the frame's tail, from `outcomes`, holds one outcome
    /// per item.
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
}

/// Why a chunk has no results.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The worker could not set the call up.
    Refused(Refusal),
    /// The worker died while running the chunk.
    Died(Death),
    /// No worker could be started to run it.
    Spawn(String),
    /// An item could not be encoded, or a reply did not check out.
    Codec(String),
}

enum Command {
    Open(Arc<Call>),
    Run(Chunk),
    Close(u64),
}

#[derive(Default)]
struct Inbound {
    commands: Vec<Command>,
    shut: bool,
}

/// The callers' side of a dispatcher: where calls send their commands.
pub(crate) struct Link {
    inbound: Mutex<Inbound>,
    wake: Private,
}

impl Link {
    fn inbound(&self) -> MutexGuard<'_, Inbound> {
        self.inbound.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, command: Command) {
        let mut inbound = self.inbound();
        if inbound.shut {
            // Dropping the command drops its reply channel: the caller sees
            // the pool closed instead of waiting.
            return;
        }
        let was_empty = inbound.commands.is_empty();
        inbound.commands.push(command);
        drop(inbound);
        if was_empty {
            // A full wake socket already holds a wake-up; nothing is lost.
            let _ = self.wake.stream().write(&[1]);
        }
    }

    pub(crate) fn open(&self, call: Arc<Call>) {
        self.send(Command::Open(call));
    }

    pub(crate) fn run(&self, chunk: Chunk) {
        self.send(Command::Run(chunk));
    }

    /// Forgets a call: its chunks not yet sent to a worker are dropped.
    pub(crate) fn close(&self, call: u64) {
        self.send(Command::Close(call));
    }
}

/// A running dispatcher thread; dropping it ends and reaps every worker.
pub(crate) struct Dispatcher {
    link: Arc<Link>,
    thread: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the thread and forks `workers` workers from it.
    pub(crate) fn start(workers: usize) -> Result<Self, Error> {
        let (wake, woken) = platform::private_pair().map_err(Error::Spawn)?;
        let link = Arc::new(Link {
            inbound: Mutex::default(),
            wake,
        });
        let (started, on_start) = mpsc::channel();
        let theirs = Arc::clone(&link);
        let thread = thread::Builder::new()
            .name("forkmap-dispatcher".into())
            .spawn(move || match Loop::start(workers, woken, theirs) {
                Ok(mut state) => {
                    let _ = started.send(Ok(()));
                    state.run();
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .map_err(Error::Spawn)?;
        let dispatcher = Dispatcher {
            link,
            thread: Some(thread),
        };
        match on_start.recv() {
            Ok(Ok(())) => Ok(dispatcher),
            Ok(Err(e)) => Err(Error::Spawn(e)),
            Err(_) => Err(Error::Closed),
        }
    }

    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.link.inbound().shut = true;
        let _ = self.link.wake.stream().write(&[1]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A chunk a worker holds.
struct Held {
    call: Arc<Call>,
    chunk: Chunk,
}

/// A frame on its way to a worker.
struct Outgoing {
    bytes: Arc<Vec<u8>>,
    written: usize,
}

struct Worker {
    pid: Pid,
    channel: Private,
    inbox: Inbox,
    outbox: VecDeque<Outgoing>,
    /// The chunks sent, oldest first; replies come in this order.
    held: VecDeque<Held>,
    /// The call whose closure the worker has built.
    loaded: Option<u64>,
    /// Writing failed: the worker is gone, and its end-of-file is coming.
    broken: bool,
}

impl Worker {
    fn spawn() -> std::io::Result<Self> {
        let spawned = platform::spawn_worker(worker::run)?;
        Ok(Worker {
            pid: spawned.pid,
            channel: spawned.channel,
            inbox: Inbox::new(),
            outbox: VecDeque::new(),
            held: VecDeque::new(),
            loaded: None,
            broken: false,
        })
    }

    fn give(&mut self, call: Arc<Call>, chunk: Chunk) {
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
        self.held.push_back(Held { call, chunk });
    }

    /// Writes what the channel takes without blocking.
    fn flush(&mut self) {
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

    /// Takes one reply frame off the front of `held`.
    fn settle(&mut self, frame: Received) -> Result<(), String> {
        let held = self.held.pop_front().ok_or("a reply came for no chunk")?;
        let (header, tail) = frame::split::<FromWorker>(frame.body()).map_err(|e| e.to_string())?;
        let (call, first) = match &header {
            FromWorker::Done { call, first } | FromWorker::Refused { call, first, .. } => {
                (*call, *first)
            }
        };
        if (call, first) != (held.call.id, held.chunk.first) {
            return Err(format!(
                "a reply for call {call} item {first} came where call {} item {} was expected",
                held.call.id, held.chunk.first
            ));
        }
        let count = held.chunk.count;
        let reply = match header {
            FromWorker::Done { .. } => Reply::Done {
                first,
                count,
                outcomes: frame.body().len() - tail.len(),
                frame,
            },
            FromWorker::Refused { reason, .. } => {
                if self.loaded == Some(call) {
                    // A refused setup is remembered by the worker; send it
                    // again next time in case the refusal was transient.
                    self.loaded = None;
                }
                Reply::Failed {
                    first,
                    count,
                    failure: Failure::Refused(reason),
                }
            }
        };
        // A caller that went away no longer wants the reply.
        let _ = held.call.replies.send(reply);
        Ok(())
    }
}

/// The dispatcher thread's state.
struct Loop {
    link: Arc<Link>,
    woken: Private,
    slots: Vec<Option<Worker>>,
    calls: HashMap<u64, Arc<Call>>,
    pending: VecDeque<Chunk>,
    spawn_error: Option<String>,
}

impl Loop {
    fn start(workers: usize, woken: Private, link: Arc<Link>) -> std::io::Result<Self> {
        let mut slots = Vec::with_capacity(workers);
        for _ in 0..workers {
            // On failure the workers forked so far are reaped as `slots` drops.
            slots.push(Some(Worker::spawn()?));
        }
        Ok(Loop {
            link,
            woken,
            slots,
            calls: HashMap::new(),
            pending: VecDeque::new(),
            spawn_error: None,
        })
    }

    fn run(&mut self) {
        loop {
            if self.take_commands() {
                break;
            }
            self.assign();
            let ready = {
                let mut watched = vec![(self.woken.stream().as_fd(), false)];
                watched.extend(
                    self.slots
                        .iter()
                        .flatten()
                        .map(|w| (w.channel.stream().as_fd(), !w.outbox.is_empty())),
                );
                match platform::poll(&watched, None) {
                    Ok(ready) => ready,
                    // Nothing sensible is left to do; dropping the state
                    // fails every call and reaps every worker.
                    Err(_) => break,
                }
            };
            if ready[0].readable {
                self.drain_wake();
            }
            let live: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].is_some())
                .collect();
            for (&i, ready) in live.iter().zip(&ready[1..]) {
                if ready.writable {
                    if let Some(worker) = &mut self.slots[i] {
                        worker.flush();
                    }
                }
                if ready.readable {
                    self.receive(i);
                }
            }
        }
        self.shut_down();
    }

    /// Applies the callers' commands; true once the pool is shutting down.
    fn take_commands(&mut self) -> bool {
        let (commands, shut) = {
            let mut inbound = self.link.inbound();
            (std::mem::take(&mut inbound.commands), inbound.shut)
        };
        for command in commands {
            match command {
                Command::Open(call) => {
                    self.calls.insert(call.id, call);
                }
                Command::Run(chunk) => self.pending.push_back(chunk),
                Command::Close(id) => {
                    self.calls.remove(&id);
                    self.pending.retain(|chunk| chunk.call != id);
                }
            }
        }
        shut
    }

    fn drain_wake(&mut self) {
        let mut sink = [0; 64];
        while matches!(self.woken.stream().read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Gives pending chunks to workers with room, preferring for each worker
    /// a chunk of the call whose closure it has already built.
    fn assign(&mut self) {
        if self.slots.iter().all(Option::is_none) {
            self.respawn();
        }
        while !self.pending.is_empty() {
            let free = self
                .slots
                .iter_mut()
                .flatten()
                .filter(|w| !w.broken && w.held.len() < DEPTH)
                .min_by_key(|w| w.held.len());
            let Some(worker) = free else { break };
            let position = self
                .pending
                .iter()
                .take(64)
                .position(|chunk| Some(chunk.call) == worker.loaded)
                .unwrap_or(0);
            let chunk = self.pending.remove(position).expect("position is in range");
            match self.calls.get(&chunk.call) {
                Some(call) => worker.give(Arc::clone(call), chunk),
                None => continue,
            }
            worker.flush();
        }
        if self.slots.iter().all(Option::is_none) {
            let reason = self
                .spawn_error
                .clone()
                .unwrap_or_else(|| "no worker is running".into());
            for chunk in std::mem::take(&mut self.pending) {
                self.fail(&chunk, Failure::Spawn(reason.clone()));
            }
        }
    }

    fn fail(&self, chunk: &Chunk, failure: Failure) {
        if let Some(call) = self.calls.get(&chunk.call) {
            let _ = call.replies.send(Reply::Failed {
                first: chunk.first,
                count: chunk.count,
                failure,
            });
        }
    }

    /// Reads what worker `i` sent, and buries it if its channel closed.
    fn receive(&mut self, i: usize) {
        let Some(worker) = &mut self.slots[i] else {
            return;
        };
        for _ in 0..16 {
            let mut stream = worker.channel.stream();
            match worker.inbox.fill(&mut stream) {
                Ok(Fill::Data) => loop {
                    match worker.inbox.next_frame() {
                        Ok(Some(frame)) => {
                            if let Err(reason) = worker.settle(frame) {
                                return self.bury(i, Some(reason));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return self.bury(i, Some(e.to_string())),
                    }
                },
                Ok(Fill::Empty) => return,
                Ok(Fill::Closed) | Err(_) => return self.bury(i, None),
            }
        }
    }

    /// Reaps worker `i`, fails the chunk it was running, requeues the ones it
    /// had not started, and forks a replacement. `broke` says the worker broke
    /// the protocol rather than died.
    fn bury(&mut self, i: usize, broke: Option<String>) {
        let Some(worker) = self.slots[i].take() else {
            return;
        };
        let Worker {
            pid, channel, held, ..
        } = worker;
        drop(channel);
        let death = platform::reap(pid, broke.is_some());
        let failure = match broke {
            Some(reason) => {
                Failure::Codec(format!("the worker's reply did not check out: {reason}"))
            }
            None => Failure::Died(death),
        };
        // Replace the worker before reporting, so that a caller who sees the
        // failure finds the pool at full strength again.
        self.slots[i] = Worker::spawn()
            .map_err(|e| self.spawn_error = Some(e.to_string()))
            .ok();
        let mut held = held.into_iter();
        if let Some(running) = held.next() {
            let _ = running.call.replies.send(Reply::Failed {
                first: running.chunk.first,
                count: running.chunk.count,
                failure,
            });
        }
        for waiting in held.rev() {
            self.pending.push_front(waiting.chunk);
        }
    }

    fn respawn(&mut self) {
        for slot in self.slots.iter_mut().filter(|slot| slot.is_none()) {
            match Worker::spawn() {
                Ok(worker) => *slot = Some(worker),
                Err(e) => self.spawn_error = Some(e.to_string()),
            }
        }
    }

    /// Ends every worker: an idle one sees end-of-file and exits, a busy one
    /// is killed; then all are reaped.
    fn shut_down(&mut self) {
        let mut ending = Vec::new();
        for worker in self.slots.iter_mut().filter_map(Option::take) {
            if !worker.held.is_empty() {
                platform::kill(worker.pid);
            }
            ending.push(worker.pid);
        }
        for pid in ending {
            platform::reap(pid, false);
        }
    }
}
