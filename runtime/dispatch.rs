//! The dispatcher: one thread per pool that owns the worker processes and
//! moves frames between them and the calls in progress.
//!
//! It only sees bytes: calls encode their items and decode their results on
//! the caller's thread. The dispatcher keeps up to [`DEPTH`] chunks on each
//! worker, sends a call's setup frame once per worker per call, notices a
//! worker's death by its channel's end-of-file, charges the death to the
//! chunk that worker was running, and forks a replacement.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::unistd::Pid;

use crate::board::{Doing, INITIALIZER};
use crate::error::{Death, Error};
use crate::frame::{self, Fill, FromWorker, Inbox, Received, Refusal, ToWorker};
use crate::platform::{self, Private, SharedBoard};
use crate::{unwind, worker};

/// How many chunks a worker holds at once: one running, one waiting in its
/// channel, so it never waits on the parent between chunks.
const DEPTH: usize = 2;

/// A call in progress: one function over any number of items.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: u64,
    /// The longest an item may run before its worker is killed.
    pub(crate) timeout: Option<Duration>,
    /// The `Call` frame that builds the closure in a worker.
    pub(crate) setup: Arc<Vec<u8>>,
    replies: Sender<Reply>,
    waker: Arc<WakerSlot>,
}

/// Where an async caller leaves its waker, woken at each reply.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    pub(crate) fn set(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn wake(&self) {
        let waker = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Call {
    /// A call with its setup frame, the receiver of its replies, and the
    /// slot a waiting future leaves its waker in.
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
            setup: Arc::new(setup),
            replies,
            waker: Arc::clone(&waker),
        };
        (Arc::new(call), receiver, waker)
    }

    /// Hands a reply to the caller; one who went away no longer wants it.
    pub(crate) fn deliver(&self, reply: Reply) {
        let _ = self.replies.send(reply);
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

    /// The number of items it covers.
    pub(crate) fn count(&self) -> u32 {
        match self {
            Reply::Done { count, .. } | Reply::Failed { count, .. } => *count,
        }
    }

    /// Reads a worker's reply frame: the call it names, the reply, and for
    /// a `Done` reply where the next item's arguments start in its chunk.
    pub(crate) fn from_frame(frame: Received) -> Result<(u64, Reply, Option<u32>), String> {
        let (header, tail) = frame::split::<FromWorker>(frame.body()).map_err(|e| e.to_string())?;
        Ok(match header {
            FromWorker::Done {
                call,
                first,
                count,
                upto,
            } => {
                let outcomes = frame.body().len() - tail.len();
                let reply = Reply::Done {
                    first,
                    count,
                    frame,
                    outcomes,
                };
                (call, reply, Some(upto))
            }
            FromWorker::Refused {
                call,
                first,
                count,
                reason,
            } => {
                let reply = Reply::Failed {
                    first,
                    count,
                    failure: Failure::Refused(reason),
                };
                (call, reply, None)
            }
        })
    }
}

/// Why a chunk has no results.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The worker could not set the call up.
    Refused(Refusal),
    /// The worker died while running the item.
    Died(Death),
    /// The item ran past its call's timeout, and the worker was killed.
    TimedOut(Duration),
    /// The worker's memory grew past this limit, and it was killed.
    OutOfMemory(u64),
    /// The worker died while building the call's closure, or while running
    /// the pool's initializer.
    DiedSettingUp { death: Death, initializer: bool },
    /// No worker could be started to run it.
    Spawn(String),
    /// An item could not be encoded, or a reply did not check out.
    Codec(String),
}

enum Command {
    Open(Arc<Call>),
    Run(Chunk),
    /// Forget the call now, dropping its chunks not yet given to a worker.
    Close(u64),
    /// Every chunk of the call has been sent and its caller no longer
    /// waits: run them, then forget the call.
    Detach(u64),
}

/// Whether the dispatcher takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Serving,
    /// Run what was handed over, then end the workers.
    Draining,
    /// End the workers now.
    Shut,
}

#[derive(Default)]
struct Inbound {
    commands: Vec<Command>,
    phase: Phase,
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
        if inbound.phase == Phase::Shut {
            // Dropping the command drops its reply channel: the caller sees
            // the pool closed instead of waiting.
            return;
        }
        let was_empty = inbound.commands.is_empty();
        inbound.commands.push(command);
        drop(inbound);
        if was_empty {
            self.wake();
        }
    }

    fn wake(&self) {
        // A full wake socket already holds a wake-up; nothing is lost.
        let _ = self.wake.stream().write(&[1]);
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

    /// Forgets a call once its chunks, all sent, have run.
    pub(crate) fn detach(&self, call: u64) {
        self.send(Command::Detach(call));
    }
}

/// What runs a pool's chunks.
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

/// A running dispatcher thread; dropping it ends and reaps every worker.
pub(crate) struct Dispatcher {
    link: Arc<Link>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    /// Starts the thread and the crew's workers from it.
    pub(crate) fn start(crew: Crew) -> Result<Self, Error> {
        unwind::install_hook();
        let (wake, woken) = platform::private_pair().map_err(Error::Spawn)?;
        let link = Arc::new(Link {
            inbound: Mutex::default(),
            wake,
        });
        let (started, on_start) = mpsc::channel();
        let theirs = Arc::clone(&link);
        let thread = thread::Builder::new()
            .name("forkmap-dispatcher".into())
            .spawn(move || match Loop::start(crew, woken, theirs) {
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
            thread: Mutex::new(Some(thread)),
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

    /// Runs every chunk already handed over, then ends the workers and
    /// waits for the dispatcher thread.
    pub(crate) fn drain(&self) {
        self.end(Phase::Draining);
    }

    /// Ends the workers now, killing busy ones, and waits for the
    /// dispatcher thread. Calls in progress see the pool closed.
    pub(crate) fn shut(&self) {
        self.end(Phase::Shut);
    }

    fn end(&self, phase: Phase) {
        {
            let mut inbound = self.link.inbound();
            if inbound.phase != Phase::Shut {
                inbound.phase = phase;
            }
        }
        self.link.wake();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shut();
    }
}

/// A chunk a worker holds.
struct Held {
    call: Arc<Call>,
    chunk: Chunk,
    /// How many of its items have been replied to.
    done: u32,
    /// Where the arguments of the first item not replied to start, among
    /// the chunk's encoded items.
    upto: usize,
}

impl Held {
    /// Where the chunk's encoded items are in its frame.
    fn items(&self) -> &[u8] {
        chunk_items(&self.chunk.frame)
    }

    /// The index of the first item not replied to, and the end of the chunk.
    fn rest(&self) -> (u64, u64) {
        let first = self.chunk.first;
        (
            first + u64::from(self.done),
            first + u64::from(self.chunk.count),
        )
    }

    /// A failure of every item not replied to.
    fn fail_rest(&self, failure: Failure) -> Reply {
        let (first, end) = self.rest();
        Reply::Failed {
            first,
            count: (end - first) as u32,
            failure,
        }
    }

    /// What the death of the worker running this chunk means, given what it
    /// last posted on its board (`doing`): the replies that fail items, while
    /// the items to run again go to `again`.
    ///
    /// A worker that died by itself charges its death to the item it was
    /// running; items of the chunk that ran before it, and whose results died
    /// with the worker, run again, and so do the items after it. A worker
    /// that died building the call's closure fails the whole rest of the
    /// chunk, and so does one that died before it ever replied (it could not
    /// even start). A worker the dispatcher killed charges the reason to what
    /// it was doing when the kill was decided, if it was still doing that;
    /// if it had moved on, or was between items, it is nobody's fault, and
    /// what it had not replied to runs again.
    fn after_death(
        &self,
        doing: Doing,
        cause: Cause,
        replied: bool,
        again: &mut Vec<Chunk>,
    ) -> Vec<Reply> {
        let (first, end) = self.rest();
        let items = self.items().len();
        let mut failed = Vec::new();
        let mut rerun = |from: u64, to: u64, bytes: std::ops::Range<usize>| {
            if from < to {
                match self.part(from, to, bytes) {
                    Some(chunk) => again.push(chunk),
                    None => failed.push(Reply::Failed {
                        first: from,
                        count: (to - from) as u32,
                        failure: Failure::Codec("the worker's progress did not check out".into()),
                    }),
                }
            }
        };
        let failure = match cause {
            Cause::Killed { doing: decided, .. } if decided != doing => None,
            Cause::Killed { why, .. } => Some(why),
            Cause::Died(death) => Some(Failure::Died(death)),
        };
        match (doing, failure) {
            (Doing::Running(item), Some(failure))
                if item.call == self.call.id && (first..end).contains(&item.index) =>
            {
                rerun(first, item.index, self.upto..item.start as usize);
                rerun(item.index + 1, end, item.end as usize..items);
                failed.push(Reply::Failed {
                    first: item.index,
                    count: 1,
                    failure,
                });
            }
            (Doing::SettingUp { call }, Some(failure))
                if call == self.call.id || call == INITIALIZER =>
            {
                failed.push(self.fail_rest(match failure {
                    Failure::Died(death) => Failure::DiedSettingUp {
                        death,
                        initializer: call == INITIALIZER,
                    },
                    other => other,
                }));
            }
            (_, Some(failure @ Failure::Died(_))) if !replied => {
                failed.push(self.fail_rest(failure));
            }
            _ => rerun(first, end, self.upto..items),
        }
        failed
    }

    /// A chunk of the items `from..to` of this one (absolute indices), whose
    /// arguments are at `bytes` among its encoded items.
    fn part(&self, from: u64, to: u64, bytes: std::ops::Range<usize>) -> Option<Chunk> {
        let mut buf = Vec::with_capacity(bytes.len() + 32);
        frame::begin(
            &mut buf,
            &ToWorker::Chunk {
                call: self.chunk.call,
                first: from,
            },
        );
        buf.extend_from_slice(self.items().get(bytes)?);
        let count = u32::try_from(to - from).ok()?;
        buf.extend_from_slice(&count.to_le_bytes());
        frame::finish(&mut buf).ok()?;
        Some(Chunk {
            call: self.chunk.call,
            first: from,
            count,
            frame: Arc::new(buf),
        })
    }
}

/// How often the memory of a busy worker is looked at, when the pool has
/// a memory limit.
const MEMORY_CHECK: Duration = Duration::from_millis(10);

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Why a worker died.
#[derive(Debug, Clone)]
enum Cause {
    /// By itself: an exit, a signal.
    Died(Death),
    /// The dispatcher killed it while it was `doing` something, because
    /// that went past a limit: the failure to charge it with.
    Killed { doing: Doing, why: Failure },
}

/// The encoded items of a chunk frame: after its header, before its count.
fn chunk_items(frame: &[u8]) -> &[u8] {
    match frame::split::<ToWorker<'_>>(&frame[4..]) {
        Ok((_, tail)) => &tail[..tail.len().saturating_sub(4)],
        Err(_) => &[],
    }
}

/// A frame on its way to a worker.
struct Outgoing {
    bytes: Arc<Vec<u8>>,
    written: usize,
}

/// What a worker runs in.
enum Body {
    Process(Pid),
    Thread(JoinHandle<i32>),
}

impl Body {
    /// Ends the worker, whose channel is closed, and says how it ended. A
    /// process that does not exit by itself, or at all when `kill` is set,
    /// is killed; a thread that may still be running a task is left to
    /// finish it, since a thread cannot be killed.
    fn end(self, kill: bool) -> Death {
        match self {
            Body::Process(pid) => platform::reap(pid, kill),
            Body::Thread(thread) if !kill => thread.join().map_or(Death::Unknown, Death::Exit),
            Body::Thread(_) => Death::Unknown,
        }
    }

    /// Kills a process at once; a thread cannot be killed.
    fn kill(&self) {
        if let Body::Process(pid) = self {
            platform::kill(*pid);
        }
    }

    /// A process's resident memory, in bytes.
    fn resident(&self) -> Option<u64> {
        match self {
            Body::Process(pid) => platform::resident_bytes(*pid),
            Body::Thread(_) => None,
        }
    }
}

struct Worker {
    body: Body,
    channel: Private,
    inbox: Inbox,
    outbox: VecDeque<Outgoing>,
    /// The chunks sent, oldest first; replies come in this order.
    held: VecDeque<Held>,
    /// The call whose closure the worker has built.
    loaded: Option<u64>,
    /// How many items the worker has been given.
    given: u64,
    /// It takes no more chunks, and is replaced once it has none.
    retiring: bool,
    /// Writing failed: the worker is gone, and its end-of-file is coming.
    broken: bool,
    /// Where the worker posts what it is doing.
    board: Arc<SharedBoard>,
    /// Why the dispatcher killed the worker, if it did.
    killed: Option<Cause>,
    /// Its resident memory when it started, in bytes.
    resident_at_start: u64,
    /// Whether it has ever replied: a worker that dies before it has is
    /// charged with its chunk even when it was not running an item, so that
    /// a worker that cannot start at all does not make the pool respawn it
    /// forever.
    replied: bool,
}

impl Worker {
    fn spawn(crew: &Crew) -> std::io::Result<Self> {
        let board = Arc::new(SharedBoard::new()?);
        let (body, channel) = match crew.kind {
            Kind::Process => {
                let spawned = platform::spawn_worker(worker::run, &board)?;
                (Body::Process(spawned.pid), spawned.channel)
            }
            Kind::Thread => {
                let (ours, theirs) = platform::private_pair()?;
                theirs.stream().set_nonblocking(false)?;
                let theirs_board = Arc::clone(&board);
                let thread = thread::Builder::new()
                    .name("forkmap-worker".into())
                    .spawn(move || worker::run(theirs.stream(), &theirs_board))?;
                (Body::Thread(thread), ours)
            }
        };
        let resident_at_start = body.resident().unwrap_or(0);
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
    fn fits(&self, chunk: &Chunk, max_tasks: Option<u64>) -> bool {
        max_tasks.is_none_or(|max| self.given == 0 || self.given + u64::from(chunk.count) <= max)
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
        self.given += u64::from(chunk.count);
        self.held.push_back(Held {
            call,
            chunk,
            done: 0,
            upto: 0,
        });
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

    /// Kills the worker, for `why`, while it is `doing` something; its
    /// end-of-file comes next, and [`Loop::bury`] charges it.
    fn kill(&mut self, doing: Doing, why: Failure) {
        self.body.kill();
        self.killed = Some(Cause::Killed { doing, why });
    }

    /// Hands one reply frame to the call of the chunk at the front of
    /// `held`, which it must continue.
    fn settle(&mut self, frame: Received) -> Result<(), String> {
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
        if matches!(reply, Reply::Failed { .. }) && self.loaded == Some(call) {
            // A refused setup is remembered by the worker; send it again
            // next time in case the refusal was transient.
            self.loaded = None;
        }
        held.call.deliver(reply);
        if held.done == held.chunk.count {
            self.held.pop_front();
        }
        Ok(())
    }
}

/// The dispatcher thread's state.
struct Loop {
    link: Arc<Link>,
    woken: Private,
    crew: Crew,
    slots: Vec<Option<Worker>>,
    calls: HashMap<u64, Arc<Call>>,
    /// Calls to forget once none of their chunks is pending.
    detached: HashSet<u64>,
    pending: VecDeque<Chunk>,
    spawn_error: Option<String>,
}

impl Loop {
    fn start(crew: Crew, woken: Private, link: Arc<Link>) -> std::io::Result<Self> {
        let mut slots = Vec::with_capacity(crew.workers);
        for _ in 0..crew.workers {
            // On failure the workers started so far end as `slots` drops.
            slots.push(Some(Worker::spawn(&crew)?));
        }
        Ok(Loop {
            link,
            woken,
            crew,
            slots,
            calls: HashMap::new(),
            detached: HashSet::new(),
            pending: VecDeque::new(),
            spawn_error: None,
        })
    }

    fn run(&mut self) {
        loop {
            match self.take_commands() {
                Phase::Shut => break,
                Phase::Draining if self.idle() => break,
                _ => {}
            }
            // Giving out chunks can retire an idle worker, and replacing it
            // makes room for more chunks.
            self.assign();
            while self.recycle() {
                self.assign();
            }
            let wait = self.watch_limits();
            let ready = {
                let mut watched = vec![(self.woken.stream().as_fd(), false)];
                watched.extend(
                    self.slots
                        .iter()
                        .flatten()
                        .map(|w| (w.channel.stream().as_fd(), !w.outbox.is_empty())),
                );
                match platform::poll(&watched, wait) {
                    Ok(ready) => ready,
                    // Nothing sensible is left to do; ending the loop fails
                    // every call and ends every worker.
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

    /// Kills every worker whose item has run past its call's timeout, or
    /// whose memory has grown past the pool's limit, and says how long until
    /// either should be looked at again.
    ///
    /// A worker posts when each item of a timed call starts; a worker on
    /// such a call that is not running an item now may start one at any
    /// moment, whose deadline is then at least one timeout away. Memory is
    /// looked at every [`MEMORY_CHECK`] while a worker holds work.
    fn watch_limits(&mut self) -> Option<Duration> {
        let now = platform::monotonic_ns();
        let memory_limit = self.crew.memory_limit;
        let mut next: Option<u64> = None;
        let mut soonest = |deadline: u64| next = Some(next.map_or(deadline, |n| n.min(deadline)));
        for worker in self.slots.iter_mut().flatten() {
            let Some(held) = worker.held.front() else {
                continue;
            };
            if worker.killed.is_some() {
                continue;
            }
            let timeout = held.call.timeout;
            let doing = worker.board.read();
            if let (Some(limit), Some(resident)) = (memory_limit, worker.body.resident()) {
                if resident.saturating_sub(worker.resident_at_start) > limit {
                    worker.kill(doing, Failure::OutOfMemory(limit));
                    continue;
                }
                soonest(now.saturating_add(nanos(MEMORY_CHECK)));
            }
            let Some(timeout) = timeout else {
                continue;
            };
            match doing {
                Doing::Running(item) if item.call == held.call.id && item.started != 0 => {
                    let deadline = item.started.saturating_add(nanos(timeout));
                    if now >= deadline {
                        worker.kill(doing, Failure::TimedOut(timeout));
                        continue;
                    }
                    soonest(deadline);
                }
                _ => soonest(now.saturating_add(nanos(timeout))),
            }
        }
        next.map(|deadline| Duration::from_nanos(deadline.saturating_sub(now)))
    }

    /// Applies the callers' commands, and says what phase the pool is in.
    fn take_commands(&mut self) -> Phase {
        let (commands, phase) = {
            let mut inbound = self.link.inbound();
            (std::mem::take(&mut inbound.commands), inbound.phase)
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
                Command::Detach(id) => {
                    self.detached.insert(id);
                }
            }
        }
        phase
    }

    /// Whether every chunk handed over has been run.
    fn idle(&self) -> bool {
        self.pending.is_empty() && self.slots.iter().flatten().all(|w| w.held.is_empty())
    }

    fn drain_wake(&mut self) {
        let mut sink = [0; 64];
        while matches!(self.woken.stream().read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Replaces the retiring workers that have finished their chunks; true
    /// if there were any.
    fn recycle(&mut self) -> bool {
        let mut replaced = false;
        for i in 0..self.slots.len() {
            let done = self.slots[i]
                .as_ref()
                .is_some_and(|w| w.retiring && w.held.is_empty());
            if done {
                self.bury(i, None);
                replaced = true;
            }
        }
        replaced
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
                .filter(|w| !w.broken && !w.retiring && w.held.len() < DEPTH)
                .min_by_key(|w| w.held.len());
            let Some(worker) = free else { break };
            let position = self
                .pending
                .iter()
                .take(64)
                .position(|chunk| Some(chunk.call) == worker.loaded)
                .unwrap_or(0);
            if !worker.fits(&self.pending[position], self.crew.max_tasks) {
                worker.retiring = true;
                continue;
            }
            let chunk = self.pending.remove(position).expect("position is in range");
            match self.calls.get(&chunk.call) {
                Some(call) => worker.give(Arc::clone(call), chunk),
                None => continue,
            }
            worker.flush();
        }
        if !self.detached.is_empty() {
            // A chunk given to a worker keeps its call; only pending ones
            // need it in `calls`.
            let pending = &self.pending;
            let calls = &mut self.calls;
            self.detached.retain(|id| {
                let waiting = pending.iter().any(|chunk| chunk.call == *id);
                if !waiting {
                    calls.remove(id);
                }
                waiting
            });
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
            call.deliver(Reply::Failed {
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

    /// Ends worker `i`, charges its death to the item it was running,
    /// requeues what it held and had not run, and starts a replacement.
    /// `broke` says the worker broke the protocol rather than died.
    fn bury(&mut self, i: usize, broke: Option<String>) {
        let Some(worker) = self.slots[i].take() else {
            return;
        };
        let Worker {
            body,
            channel,
            held,
            board,
            killed,
            replied,
            ..
        } = worker;
        drop(channel);
        let death = body.end(broke.is_some());
        let doing = board.read();
        // Replace the worker before reporting, so that a caller who sees the
        // failure finds the pool at full strength again.
        self.slots[i] = Worker::spawn(&self.crew)
            .map_err(|e| self.spawn_error = Some(e.to_string()))
            .ok();
        let mut again = Vec::new();
        let mut held = held.into_iter();
        if let Some(running) = held.next() {
            let failed = match broke {
                Some(reason) => {
                    let reason = format!("the worker's reply did not check out: {reason}");
                    vec![running.fail_rest(Failure::Codec(reason))]
                }
                None => {
                    let cause = killed.unwrap_or(Cause::Died(death));
                    running.after_death(doing, cause, replied, &mut again)
                }
            };
            for reply in failed {
                running.call.deliver(reply);
            }
        }
        again.extend(held.map(|waiting| waiting.chunk));
        for chunk in again.into_iter().rev() {
            self.pending.push_front(chunk);
        }
    }

    fn respawn(&mut self) {
        for slot in self.slots.iter_mut().filter(|slot| slot.is_none()) {
            match Worker::spawn(&self.crew) {
                Ok(worker) => *slot = Some(worker),
                Err(e) => self.spawn_error = Some(e.to_string()),
            }
        }
    }

    /// Ends every worker: an idle one sees end-of-file and exits, a busy one
    /// is killed (a busy thread is left to finish its task).
    fn shut_down(&mut self) {
        {
            // From now on commands are dropped, and so are those that came
            // too late: their callers see the pool closed.
            let mut inbound = self.link.inbound();
            inbound.phase = Phase::Shut;
            inbound.commands.clear();
        }
        let ending: Vec<(Body, bool)> = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .map(|worker| (worker.body, !worker.held.is_empty()))
            .collect();
        for (body, busy) in ending {
            body.end(busy);
        }
    }
}
