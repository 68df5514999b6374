//! The scheduler: which worker runs which chunk, what a worker's death
//! costs, and when a worker is killed or replaced, over any backend.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Event};
use crate::dispatch::held::Cause;
use crate::dispatch::slot::Slot;
use crate::dispatch::work::{Call, Chunk, Reply};
use crate::platform::board::{Doing, INITIALIZER};
use crate::platform::Death;
use crate::protocol::message::Failure;

/// What the workers of a pool run with.
#[derive(Debug, Clone)]
pub(crate) struct WorkerOptions {
    /// How many workers.
    pub(crate) count: usize,
    /// Replace a worker once it has been given this many items.
    pub(crate) max_tasks: Option<u64>,
    /// The `Init` frame every new worker is sent first.
    pub(crate) init: Option<Arc<Vec<u8>>>,
    /// How many bytes each worker's resident memory may grow by.
    pub(crate) memory_limit: Option<u64>,
    /// The size of each of a worker's two rings, where its backend has
    /// them.
    pub(crate) ring_size: usize,
}

/// What a call asks of the dispatcher.
pub(crate) enum Command {
    Open(Arc<Call>),
    Run(Chunk),
    /// Forget the call now, dropping its chunks not yet given to a worker.
    Close(u64),
    /// Every chunk of the call has been sent and its caller no longer
    /// waits: run them, then forget the call.
    Detach(u64),
}

/// A chunk waiting for a worker, with its call.
struct Queued {
    call: Arc<Call>,
    chunk: Chunk,
}

/// How often the memory of a busy worker is looked at, when the pool has
/// a memory limit.
const MEMORY_CHECK: Duration = Duration::from_millis(10);

/// How long a worker asked to stop a cancelled call's items has to get to
/// the end of the item it runs, before it is killed (and replaced).
const STOP_GRACE: Duration = Duration::from_millis(50);

/// The state of one pool's dispatching: its backend, a record per worker
/// slot, the calls in progress and the chunks waiting for a worker.
pub(crate) struct Scheduler {
    backend: Box<dyn Backend>,
    options: WorkerOptions,
    slots: Vec<Option<Slot>>,
    /// The calls whose chunks may still come, to queue them with.
    calls: HashMap<u64, Arc<Call>>,
    /// Chunks waiting for a worker, oldest first.
    pending: VecDeque<Queued>,
    spawn_error: Option<String>,
    /// When the workers' memory is to be looked at next.
    next_memory_check: Instant,
    events: Vec<Event>,
}

impl Scheduler {
    /// Starts every worker of `options` on `backend`. On failure the
    /// workers started so far are ended.
    pub(crate) fn start(
        backend: Box<dyn Backend>,
        options: WorkerOptions,
    ) -> std::io::Result<Self> {
        let mut scheduler = Scheduler {
            backend,
            slots: (0..options.count).map(|_| None).collect(),
            options,
            calls: HashMap::new(),
            pending: VecDeque::new(),
            spawn_error: None,
            next_memory_check: Instant::now(),
            events: Vec::new(),
        };
        // On failure, dropping the scheduler ends the workers started so far.
        for i in 0..scheduler.slots.len() {
            scheduler.start_worker(i)?;
        }
        Ok(scheduler)
    }

    /// The backend's waker, for callers on other threads.
    pub(crate) fn waker(&self) -> Arc<dyn crate::backend::Wake> {
        self.backend.waker()
    }

    fn start_worker(&mut self, i: usize) -> std::io::Result<()> {
        if let Err(e) = self.backend.start(i) {
            event!(warn, worker = i, error = %e, "could not start a worker");
            return Err(e);
        }
        if let Some(init) = &self.options.init {
            self.backend.send(i, Arc::clone(init));
        }
        self.slots[i] = Some(Slot::new());
        event!(debug, worker = i, "worker started");
        Ok(())
    }

    /// Applies a call's command.
    pub(crate) fn apply(&mut self, command: Command) {
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
                // The chunks workers hold stop between items, or with their
                // worker.
                let deadline = Instant::now() + STOP_GRACE;
                for (i, slot) in self.slots.iter_mut().enumerate() {
                    if let Some(slot) = slot.as_mut().filter(|slot| slot.holds(id)) {
                        self.backend.ask_to_stop(i, id);
                        slot.stop(id, deadline);
                    }
                }
            }
            // Every chunk has come; the queued ones keep their call.
            Command::Detach(id) => {
                self.calls.remove(&id);
            }
        }
    }

    /// Gives waiting chunks to workers, and replaces retiring workers that
    /// are done.
    pub(crate) fn give_out(&mut self) {
        // Giving out chunks can retire an idle worker, and replacing it
        // makes room for more chunks.
        self.assign();
        while self.recycle() {
            self.assign();
        }
    }

    /// Whether every chunk handed over has been run.
    pub(crate) fn idle(&self) -> bool {
        self.pending.is_empty() && self.slots.iter().flatten().all(Slot::is_idle)
    }

    /// Waits for what the workers do, at most until a limit needs looking
    /// at (or not at all unless `block`), and takes it in.
    pub(crate) fn take_in(&mut self, block: bool) {
        let deadline = match (self.watch_limits(), block) {
            (_, false) => Some(Instant::now()),
            (deadline, true) => deadline,
        };
        let mut events = std::mem::take(&mut self.events);
        self.backend.wait(deadline, &mut events);
        for event in events.drain(..) {
            match event {
                Event::Frame { worker, frame } => {
                    let Some(slot) = self.slots[worker].as_mut() else {
                        continue;
                    };
                    if let Err(reason) = slot.settle(frame) {
                        self.bury(worker, Some(reason));
                    }
                }
                Event::Ended { worker } => self.bury(worker, None),
                Event::Garbled { worker, reason } => self.bury(worker, Some(reason)),
                Event::Deaf { worker } => {
                    if let Some(slot) = self.slots[worker].as_mut() {
                        event!(
                            warn,
                            worker,
                            "a task closed or replaced a descriptor of its worker's link, \
                             so the worker is replaced once it holds no work"
                        );
                        slot.retire();
                    }
                }
            }
        }
        self.events = events;
    }

    /// Kills every worker whose item has run past its call's timeout, or
    /// whose memory has grown past the pool's limit, and says when either
    /// should be looked at again.
    ///
    /// A worker posts when each item of a timed call starts. Memory is looked
    /// at every [`MEMORY_CHECK`] while a worker holds work.
    fn watch_limits(&mut self) -> Option<Instant> {
        if !self.backend.can_kill() {
            return None;
        }
        let now = Instant::now();
        let memory_limit = self
            .options
            .memory_limit
            .filter(|_| now >= self.next_memory_check);
        if memory_limit.is_some() {
            self.next_memory_check = now + MEMORY_CHECK;
        }
        let memory_check = self.options.memory_limit.map(|_| self.next_memory_check);
        let mut next: Option<Instant> = None;
        let mut soonest =
            |deadline: Instant| next = Some(next.map_or(deadline, |n| n.min(deadline)));
        let clock = crate::platform::monotonic_ns();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if let Some(deadline) = slot.stop_deadline().filter(|_| slot.killed().is_none()) {
                if now >= deadline {
                    let doing = self.backend.doing(i);
                    event!(
                        debug,
                        parent: slot.running().and_then(|held| held.call.span.id()),
                        worker = i,
                        "the worker still ran an item of a cancelled call, so it was killed"
                    );
                    self.backend.kill(i);
                    slot.mark_killed(Cause::Killed {
                        doing,
                        why: Failure::Cancelled,
                    });
                    continue;
                }
                soonest(deadline);
            }
            let Some(held) = slot.running() else {
                continue;
            };
            let timeout = held.call.timeout;
            let id = held.call.id;
            let items = held.chunk.count;
            if slot.killed().is_some() || (timeout.is_none() && memory_check.is_none()) {
                continue;
            }
            let doing = self.backend.doing(i);
            if let Some(limit) = memory_limit {
                if let Some(grown) = self.backend.memory_growth(i).filter(|&grown| grown > limit) {
                    event!(
                        warn,
                        parent: slot.running().and_then(|held| held.call.span.id()),
                        worker = i,
                        item = running_item(doing),
                        grown,
                        limit,
                        "a worker grew past the memory limit, so it was killed"
                    );
                    #[cfg(not(feature = "tracing"))]
                    let _ = grown;
                    self.backend.kill(i);
                    slot.mark_killed(Cause::Killed {
                        doing,
                        why: Failure::OutOfMemory(limit),
                    });
                    continue;
                }
            }
            if let Some(check) = memory_check {
                soonest(check);
            }
            let Some(timeout) = timeout else {
                continue;
            };
            // An item's time counts from when it started, or from when its
            // chunk was handed over if the worker has not posted it (stopped,
            // stuck reading); a factory body's counts as an item's does.
            let started = match doing {
                Doing::Running(item) if item.call == id => item.started,
                Doing::SettingUp { call, started } if call == id => started,
                _ => 0,
            };
            // The board is the worker's, which a task can write: a start
            // later than now is not believed, and whatever the board says,
            // the chunk's items, the closure's building and the worker's
            // initializer cannot take longer together than a timeout each
            // from hand-over.
            let since = started.min(clock).max(slot.handed_over());
            let ran = Duration::from_nanos(clock.saturating_sub(since));
            let chunk_ran = Duration::from_nanos(clock.saturating_sub(slot.handed_over()));
            let chunk_limit = timeout.saturating_mul(items.saturating_add(2));
            if ran >= timeout || chunk_ran >= chunk_limit {
                event!(
                    warn,
                    parent: slot.running().and_then(|held| held.call.span.id()),
                    worker = i,
                    item = running_item(doing),
                    ?timeout,
                    "an item ran past its timeout, so its worker was killed"
                );
                self.backend.kill(i);
                slot.mark_killed(Cause::Killed {
                    doing,
                    why: Failure::TimedOut(timeout),
                });
            } else {
                // A timeout too long to add to now has no deadline.
                if let Some(deadline) =
                    now.checked_add((timeout - ran).min(chunk_limit - chunk_ran))
                {
                    soonest(deadline);
                }
            }
        }
        next
    }

    /// Replaces the retiring workers that have finished their chunks; true
    /// if there were any.
    fn recycle(&mut self) -> bool {
        let mut replaced = false;
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(Slot::is_done) {
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
            let backend = &self.backend;
            let mut open: Vec<usize> = (0..self.slots.len())
                .filter(|&i| {
                    self.slots[i]
                        .as_ref()
                        .is_some_and(|slot| slot.has_room(backend.depth(i)))
                })
                .collect();
            open.sort_by_key(|&i| self.slots[i].as_ref().map_or(0, Slot::held_count));
            for i in open {
                let Some(slot) = self.slots[i].as_mut() else {
                    continue;
                };
                let behind = slot.held_count() >= self.backend.depth(i);
                let fits = |queued: &Queued| !behind || queued.call.quick.load(Ordering::Relaxed);
                // A chunk of the call whose closure the worker has built, or
                // any other.
                let near = self.pending.iter().take(64);
                let position = near
                    .clone()
                    .position(|queued| Some(queued.call.id) == slot.loaded() && fits(queued))
                    .or_else(|| near.clone().position(fits));
                let Some(position) = position else {
                    continue;
                };
                if !slot.fits(&self.pending[position].chunk, self.options.max_tasks) {
                    slot.retire();
                    continue 'giving;
                }
                let queued = self.pending.remove(position).expect("position is in range");
                event!(
                    trace,
                    parent: &queued.call.span,
                    worker = i,
                    first = queued.chunk.first,
                    count = queued.chunk.count,
                    "chunk handed to a worker"
                );
                for frame in slot.give(queued.call, queued.chunk) {
                    self.backend.send(i, frame);
                }
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

    /// Ends worker `i`, charges its death to the item it was running,
    /// requeues what it held and had not run, and starts a replacement.
    /// `broke` says the worker broke the protocol rather than died.
    fn bury(&mut self, i: usize, broke: Option<String>) {
        let Some(slot) = self.slots[i].take() else {
            return;
        };
        let retired = slot.is_done();
        let ending = self.backend.end(i, broke.is_some());
        let (held, killed, replied) = slot.into_held();
        let doing = ending.doing;
        #[cfg(feature = "tracing")]
        let parent = held.front().and_then(|held| held.call.span.id());
        match (&broke, &killed) {
            (Some(_), _) => event!(
                warn,
                parent: parent.clone(),
                worker = i,
                item = running_item(doing),
                reason = broke.as_deref(),
                "a worker sent what is not a reply, so it was ended"
            ),
            // The kill was told when it was decided.
            (None, Some(_)) => event!(debug, worker = i, "a killed worker ended"),
            (None, None) if retired && matches!(ending.death, Death::Exit(0)) => {
                event!(debug, worker = i, "a retiring worker ended")
            }
            // The pool closed its link, and it did not end (a slow `Drop` of
            // its closure's state, say).
            (None, None) if retired && ending.lingered => event!(
                warn,
                worker = i,
                "a retiring worker did not end within 200 ms of being told to, so it was killed"
            ),
            (None, None) if ending.lingered => event!(
                warn,
                parent: parent.clone(),
                worker = i,
                item = running_item(doing),
                "a worker's link closed while the worker still ran (a task closed one of its \
                 descriptors), so it was ended"
            ),
            (None, None) => event!(
                warn,
                parent: parent.clone(),
                worker = i,
                item = running_item(doing),
                death = %ending.death,
                "a worker died"
            ),
        }
        // Replace the worker before reporting, so that a caller who sees the
        // failure finds the pool at full strength again; but not a worker
        // that died before it could start (a crashing initializer, a memory
        // limit too small to run at all), which would have the pool fork over
        // and over with nothing to do: its slot is filled when work comes.
        let started = replied
            || broke.is_some()
            || ending.last.is_some()
            || matches!(doing, Doing::Running(_))
            || matches!(doing, Doing::SettingUp { call, .. } if call != INITIALIZER);
        if started {
            match self.start_worker(i) {
                Ok(()) if retired => event!(debug, worker = i, "worker replaced"),
                Ok(()) => event!(info, parent: parent, worker = i, "worker replaced"),
                Err(e) => self.spawn_error = Some(e.to_string()),
            }
        }
        let mut again = Vec::new();
        let mut held = held.into_iter();
        if let Some(running) = held.next() {
            let mut rerun = Vec::new();
            let cause = match (broke, killed) {
                (Some(reason), _) => Cause::Broke(reason),
                (None, Some(killed)) => killed,
                (None, None) => Cause::Died(ending.death),
            };
            for reply in running.after_end(&ending, cause, replied, &mut rerun) {
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
        for i in 0..self.slots.len() {
            if self.slots[i].is_none() {
                if let Err(e) = self.start_worker(i) {
                    self.spawn_error = Some(e.to_string());
                }
            }
        }
    }

    /// Ends every worker: an idle one sees end-of-file and exits, a busy one
    /// is killed (a busy thread is left to finish its task).
    pub(crate) fn shut_down(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots[i].take() {
                self.backend.end(i, !slot.is_idle());
                event!(debug, worker = i, "worker ended with its pool");
            }
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The index of the item a worker was running, for an event.
#[cfg(feature = "tracing")]
fn running_item(doing: Doing) -> Option<u64> {
    match doing {
        Doing::Running(item) => Some(item.index),
        _ => None,
    }
}
