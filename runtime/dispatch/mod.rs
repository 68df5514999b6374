//! The dispatcher: hands the chunks of calls in progress to a pool's
//! workers, charges a worker's death, timeout or memory-limit kill to the
//! exact item it was running, and replaces the worker; the same for every
//! backend.
//!
//! It only moves bytes: calls encode their items and decode their results on
//! the caller's thread. The [`scheduler`] decides; it is driven either by a
//! thread of the pool's own ([`Dispatcher::Threaded`], for workers that run
//! beside the caller) or by the caller itself ([`Dispatcher::Inline`], for a
//! worker that runs in the caller). A call reaches it through a [`Route`].

mod held;
pub(crate) mod scheduler;
mod slot;
pub(crate) mod work;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use crate::backend::{Backend, Wake};
use crate::dispatch::scheduler::{Command, Scheduler, WorkerOptions};
use crate::dispatch::work::{Call, Chunk};
use crate::error::Error;
use crate::platform::link::DEFAULT_RING_SIZE;

/// Whether a threaded dispatcher takes work.
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

/// The callers' side of a threaded dispatcher: where calls leave their
/// commands.
pub(crate) struct Link {
    inbound: Mutex<Inbound>,
    waker: Arc<dyn Wake>,
    /// The process whose thread drives the dispatcher. A process forked
    /// from it (the program's own `fork`) holds a copy of the link with no
    /// thread behind it, and a copy of its wake socket that would wake the
    /// original: it must use neither.
    owner: u32,
}

impl Link {
    fn inbound(&self) -> MutexGuard<'_, Inbound> {
        self.inbound.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err` in a process forked from the one that owns the dispatcher.
    pub(crate) fn check_owner(&self) -> Result<(), Error> {
        match std::process::id() == self.owner {
            true => Ok(()),
            false => Err(Error::Inherited { owner: self.owner }),
        }
    }

    fn send(&self, command: Command) {
        if self.check_owner().is_err() {
            return;
        }
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
            self.waker.wake();
        }
    }
}

/// Makes a pool's backend, in the thread that will drive it.
pub(crate) type NewBackend = fn(&WorkerOptions) -> std::io::Result<Box<dyn Backend>>;

impl Link {
    /// Forgets a call: its chunks not yet sent to a worker are dropped.
    pub(crate) fn close(&self, call: u64) {
        self.send(Command::Close(call));
    }

    /// Forgets a call once its chunks, all sent, have run.
    pub(crate) fn detach(&self, call: u64) {
        self.send(Command::Detach(call));
    }
}

/// How a pool's scheduler is driven.
pub(crate) enum Dispatcher {
    /// By a thread of its own, which owns the workers; calls send it
    /// commands.
    Threaded {
        link: Arc<Link>,
        thread: Mutex<Option<JoinHandle<()>>>,
    },
    /// By each call, in the caller's thread, over a backend of its own.
    Inline {
        backend: NewBackend,
        /// Set when the pool is terminated; calls in progress watch it.
        terminated: Arc<AtomicBool>,
    },
}

impl Dispatcher {
    /// Starts a thread that makes a `backend`, starts the workers of
    /// `options` on it, and drives them. (A worker process forked directly
    /// dies with the thread that forked it: this one, which lives as long as
    /// the pool.)
    pub(crate) fn threaded(
        backend: impl FnOnce(&WorkerOptions) -> std::io::Result<Box<dyn Backend>> + Send + 'static,
        options: WorkerOptions,
    ) -> Result<Self, Error> {
        crate::unwind::install_hook();
        let (started, on_start) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("forkmap-dispatcher".into())
            .spawn(
                move || match backend(&options).and_then(|b| Scheduler::start(b, options)) {
                    Ok(scheduler) => {
                        let link = Arc::new(Link {
                            inbound: Mutex::default(),
                            waker: scheduler.waker(),
                            owner: std::process::id(),
                        });
                        let _ = started.send(Ok(Arc::clone(&link)));
                        drive(scheduler, &link);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                },
            )
            .map_err(Error::Spawn)?;
        match on_start.recv() {
            Ok(Ok(link)) => Ok(Dispatcher::Threaded {
                link,
                thread: Mutex::new(Some(thread)),
            }),
            Ok(Err(e)) => Err(Error::Spawn(e)),
            Err(_) => Err(Error::Closed),
        }
    }

    /// A dispatcher that each call drives itself over a new `backend`.
    pub(crate) fn inline(backend: NewBackend) -> Self {
        crate::unwind::install_hook();
        Dispatcher::Inline {
            backend,
            terminated: Arc::default(),
        }
    }

    /// Where a new call sends its commands.
    pub(crate) fn route(&self) -> Result<Route, Error> {
        match self {
            Dispatcher::Threaded { link, .. } => {
                link.check_owner()?;
                Ok(Route::Threaded(Arc::clone(link)))
            }
            Dispatcher::Inline {
                backend,
                terminated,
            } => {
                let options = WorkerOptions {
                    count: 1,
                    max_tasks: None,
                    init: None,
                    memory_limit: None,
                    ring_size: DEFAULT_RING_SIZE,
                };
                let scheduler = backend(&options)
                    .and_then(|backend| Scheduler::start(backend, options))
                    .map_err(Error::Spawn)?;
                Ok(Route::Inline {
                    scheduler: Some(Box::new(scheduler)),
                    terminated: Arc::clone(terminated),
                })
            }
        }
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
        match self {
            // A process forked from the owner has no dispatcher thread to
            // end, and must touch nothing of the owner's.
            Dispatcher::Threaded { link, thread } if link.check_owner().is_err() => {
                if let Some(thread) = thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    std::mem::forget(thread);
                }
            }
            Dispatcher::Threaded { link, thread } => {
                {
                    let mut inbound = link.inbound();
                    if inbound.phase != Phase::Shut {
                        inbound.phase = phase;
                    }
                }
                link.waker.wake();
                let thread = thread.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            }
            Dispatcher::Inline { terminated, .. } => {
                if phase == Phase::Shut {
                    terminated.store(true, Ordering::Release);
                }
            }
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shut();
    }
}

/// The dispatcher thread's loop.
fn drive(mut scheduler: Scheduler, link: &Link) {
    let closing = Closing(link);
    loop {
        let (commands, phase) = {
            let mut inbound = link.inbound();
            (std::mem::take(&mut inbound.commands), inbound.phase)
        };
        for command in commands {
            scheduler.apply(command);
        }
        if phase == Phase::Shut {
            break;
        }
        scheduler.give_out();
        // After giving out, which may have dropped the chunks of cancelled
        // calls: then nothing may be left to wait for.
        if phase == Phase::Draining && scheduler.idle() {
            break;
        }
        scheduler.take_in(true);
    }
    drop(closing);
    scheduler.shut_down();
}

/// Closes a dispatcher's link when its loop ends, or when it panics (a bug):
/// from then on commands are dropped, and so are those that came too late,
/// so that their callers see the pool closed rather than wait for good.
struct Closing<'a>(&'a Link);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let mut inbound = self.0.inbound();
        inbound.phase = Phase::Shut;
        inbound.commands.clear();
    }
}

/// Where one call's commands go.
pub(crate) enum Route {
    /// To a dispatcher thread.
    Threaded(Arc<Link>),
    /// To a scheduler of the call's own, which runs each chunk as it is
    /// sent; `None` once the pool was terminated.
    Inline {
        scheduler: Option<Box<Scheduler>>,
        terminated: Arc<AtomicBool>,
    },
}

impl Route {
    fn send(&mut self, command: Command) {
        match self {
            Route::Threaded(link) => link.send(command),
            Route::Inline {
                scheduler,
                terminated,
            } => {
                if terminated.load(Ordering::Acquire) {
                    // Dropping the scheduler drops the call and its reply
                    // channel: the caller sees the pool closed.
                    *scheduler = None;
                }
                let Some(scheduler) = scheduler else { return };
                scheduler.apply(command);
                scheduler.give_out();
                while !scheduler.idle() {
                    scheduler.take_in(false);
                    scheduler.give_out();
                }
            }
        }
    }

    pub(crate) fn open(&mut self, call: Arc<Call>) {
        self.send(Command::Open(call));
    }

    pub(crate) fn run(&mut self, chunk: Chunk) {
        self.send(Command::Run(chunk));
    }

    /// The dispatcher thread's link, through which a call that is dropped
    /// says so; `None` for an inline call, whose replies all arrive while it
    /// sends its chunks.
    pub(crate) fn link(&self) -> Option<Arc<Link>> {
        match self {
            Route::Threaded(link) => Some(Arc::clone(link)),
            Route::Inline { .. } => None,
        }
    }
}
