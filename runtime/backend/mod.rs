//! The dispatcher: one thread per pool that owns the worker processes and
//! moves frames between them and the calls in progress.
//!
//! It only sees bytes: calls encode their items and decode their results on
//! the caller's thread. The dispatcher gives each worker a chunk to run, and
//! one more to hold behind it when the call's chunks run quickly; sends a
//! call's setup frame once per worker per call; kills a worker whose item
//! runs past its timeout or whose memory grows past the pool's limit;
//! notices a worker's death by its channel's end-of-file, charges the death
//! to the item that worker was running (its board says which, see [`held`]),
//! and forks a replacement.

mod crew;
mod held;
pub(crate) mod reply;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::backend::reply::{Call, Chunk, Failure, Reply};
use crate::error::Error;
use crate::platform::board::{Doing, INITIALIZER};
use crate::platform::{self, Private};
use crate::protocol::frame::Fill;
use crate::worker::unwind;

use crew::{Body, Worker};
pub(crate) use crew::{Crew, Kind};
use held::Cause;

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

/// A chunk waiting for a worker, with its call.
struct Queued {
    call: Arc<Call>,
    chunk: Chunk,
}

/// How often the memory of a busy worker is looked at, when the pool has
/// a memory limit.
const MEMORY_CHECK: Duration = Duration::from_millis(10);

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The dispatcher thread's state.
struct Loop {
    link: Arc<Link>,
    woken: Private,
    crew: Crew,
    slots: Vec<Option<Worker>>,
    /// The calls whose chunks may still come, to queue them with.
    calls: HashMap<u64, Arc<Call>>,
    /// Chunks waiting for a worker, oldest first.
    pending: VecDeque<Queued>,
    spawn_error: Option<String>,
    /// When the workers' memory is to be looked at next
    /// ([`platform::monotonic_ns`]).
    next_memory_check: u64,
}

impl Loop {
    fn start(crew: Crew, woken: Private, link: Arc<Link>) -> std::io::Result<Self> {
        let mut slots = Vec::with_capacity(crew.workers);
        for _ in 0..crew.workers {
            // On failure the workers started so far are killed and reaped
            // as `slots` drops.
            slots.push(Some(Worker::spawn(&crew)?));
        }
        Ok(Loop {
            link,
            woken,
            crew,
            slots,
            calls: HashMap::new(),
            pending: VecDeque::new(),
            spawn_error: None,
            next_memory_check: 0,
        })
    }

    fn run(&mut self) {
        loop {
            let phase = self.take_commands();
            if phase == Phase::Shut {
                break;
            }
            // Giving out chunks can retire an idle worker, and replacing it
            // makes room for more chunks.
            self.assign();
            while self.recycle() {
                self.assign();
            }
            // After giving out, which may have dropped the chunks of
            // cancelled calls: then nothing may be left to wait for.
            if phase == Phase::Draining && self.idle() {
                break;
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
        let memory_limit = self
            .crew
            .memory_limit
            .filter(|_| now >= self.next_memory_check);
        if memory_limit.is_some() {
            self.next_memory_check = now.saturating_add(nanos(MEMORY_CHECK));
        }
        let memory_check = self.crew.memory_limit.map(|_| self.next_memory_check);
        let mut next: Option<u64> = None;
        let mut soonest = |deadline: u64| next = Some(next.map_or(deadline, |n| n.min(deadline)));
        for worker in self.slots.iter_mut().flatten() {
            let Some(held) = worker.held.front() else {
                continue;
            };
            let timeout = held.call.timeout;
            if worker.killed.is_some() || (timeout.is_none() && self.crew.memory_limit.is_none()) {
                continue;
            }
            let doing = worker.board.read();
            if let (Some(limit), Some(resident)) = (memory_limit, worker.body.resident()) {
                if resident.saturating_sub(worker.resident_at_start) > limit {
                    worker.kill(doing, Failure::OutOfMemory(limit));
                    continue;
                }
            }
            if let Some(check) = memory_check {
                soonest(check);
            }
            let Some(timeout) = timeout else {
                continue;
            };
            // The factory body counts against the timeout as an item does.
            let started = match doing {
                Doing::Running(item) if item.call == held.call.id => item.started,
                Doing::SettingUp { call, started } if call == held.call.id => started,
                _ => 0,
            };
            if started == 0 {
                soonest(now.saturating_add(nanos(timeout)));
                continue;
            }
            let deadline = started.saturating_add(nanos(timeout));
            if now >= deadline {
                worker.kill(doing, Failure::TimedOut(timeout));
            } else {
                soonest(deadline);
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
                Command::Run(chunk) => {
                    // A chunk of a call that was closed meanwhile is dropped.
                    if let Some(call) = self.calls.get(&chunk.call) {
                        self.pending.push_back(Queued {
                            call: Arc::clone(call),
                            chunk,
                        });
                    }
                }
                Command::Close(id) => {
                    if let Some(call) = self.calls.remove(&id) {
                        call.cancelled.store(true, Ordering::Relaxed);
                    }
                    self.pending.retain(|queued| queued.call.id != id);
                }
                // Every chunk has come; the queued ones keep their call.
                Command::Detach(id) => {
                    self.calls.remove(&id);
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
        if !self.pending.is_empty() {
            self.respawn();
        }
        'giving: while !self.pending.is_empty() {
            // Idle workers first; then those running a quick chunk, which
            // may hold a quick chunk behind it.
            let mut open: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].as_ref().is_some_and(Worker::has_room))
                .collect();
            open.sort_by_key(|&i| self.slots[i].as_ref().map_or(0, |w| w.held.len()));
            for i in open {
                let Some(worker) = self.slots[i].as_mut() else {
                    continue;
                };
                let behind = !worker.held.is_empty();
                let fits = |queued: &Queued| !behind || queued.call.quick.load(Ordering::Relaxed);
                // A chunk of the call whose closure the worker has built, or
                // any other.
                let near = self.pending.iter().take(64);
                let position = near
                    .clone()
                    .position(|queued| Some(queued.call.id) == worker.loaded && fits(queued))
                    .or_else(|| near.clone().position(fits));
                let Some(position) = position else {
                    continue;
                };
                if !worker.fits(&self.pending[position].chunk, self.crew.max_tasks) {
                    worker.retiring = true;
                    continue 'giving;
                }
                let queued = self.pending.remove(position).expect("position is in range");
                worker.give(queued.call, queued.chunk);
                worker.flush();
                continue 'giving;
            }
            break;
        }
        if self.slots.iter().all(Option::is_none) {
            let reason = self
                .spawn_error
                .clone()
                .unwrap_or_else(|| "no worker is running".into());
            for queued in std::mem::take(&mut self.pending) {
                queued.call.deliver(Reply::Failed {
                    first: queued.chunk.first,
                    count: queued.chunk.count,
                    failure: Failure::Spawn(reason.clone()),
                });
            }
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
        // failure finds the pool at full strength again; but not a worker
        // that died before it could start (a crashing initializer, a memory
        // limit too small to run at all), which would have the pool fork over
        // and over with nothing to do: its slot is filled when work comes.
        let started = replied
            || broke.is_some()
            || matches!(doing, Doing::Running(_))
            || matches!(doing, Doing::SettingUp { call, .. } if call != INITIALIZER);
        if started {
            self.slots[i] = Worker::spawn(&self.crew)
                .map_err(|e| self.spawn_error = Some(e.to_string()))
                .ok();
        }
        let mut again = Vec::new();
        let mut held = held.into_iter();
        if let Some(running) = held.next() {
            let mut rerun = Vec::new();
            let failed = match broke {
                Some(reason) => {
                    let reason = format!("the worker's reply did not check out: {reason}");
                    vec![running.fail_rest(Failure::Codec(reason))]
                }
                None => {
                    let cause = killed.unwrap_or(Cause::Died(death));
                    running.after_death(doing, cause, replied, &mut rerun)
                }
            };
            for reply in failed {
                running.call.deliver(reply);
            }
            again.extend(rerun.into_iter().map(|chunk| Queued {
                call: Arc::clone(&running.call),
                chunk,
            }));
        }
        again.extend(held.map(|waiting| Queued {
            call: waiting.call,
            chunk: waiting.chunk,
        }));
        // What a cancelled call had not run, it never runs.
        for queued in again.into_iter().rev() {
            if !queued.call.cancelled.load(Ordering::Relaxed) {
                self.pending.push_front(queued);
            }
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
