//! What the three pools share: the one place where a pool's kind of worker
//! is chosen, how a call's chunks are sized, and whether the pool still
//! takes calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::process::ProcessBackend;
use crate::backend::serial::SerialBackend;
use crate::backend::thread::ThreadBackend;
use crate::call::chunk::ChunkPlan;
#[cfg(feature = "progress")]
use crate::call::progress::Shown;
use crate::call::{Running, Watch};
use crate::dispatch::scheduler::WorkerOptions;
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::protocol::task::Task;

/// The kinds of worker a pool can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Forked processes: [`ProcessPool`](crate::ProcessPool).
    Process,
    /// Threads of this process: [`ThreadPool`](crate::ThreadPool).
    Thread,
    /// The caller itself: [`SerialPool`](crate::SerialPool).
    Serial,
}

/// A dispatcher over `workers.count` worker processes, and the thread that
/// drives it.
pub(crate) fn process_dispatcher(workers: WorkerOptions) -> Result<Dispatcher, Error> {
    Dispatcher::threaded(
        |options| {
            Ok(Box::new(ProcessBackend::new(
                options.memory_limit.is_some(),
                options.ring_size,
            )?))
        },
        workers,
    )
}

/// How a pool's calls are cut into chunks, how long their items may run,
/// and whether they show a progress bar, unless a call says otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallOptions {
    pub(crate) chunk_size: Option<usize>,
    pub(crate) max_tasks: Option<usize>,
    /// The longest an item may run.
    pub(crate) timeout: Option<Duration>,
    /// Each call of many items draws a bar of its own on stderr.
    #[cfg(feature = "progress")]
    pub(crate) progress: bool,
}

/// What the calls made through a [`Configured`](crate::Configured) pool
/// change of the pool's [`CallOptions`]. (Public, in a private module, as
/// [`Engine`] is: the sealed trait's methods name it.)
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub(crate) chunk_size: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    /// A bar that counts the items of every call made through the view,
    /// and how many of them failed.
    #[cfg(feature = "progress")]
    pub(crate) progress: Option<crate::call::progress::CallersBar>,
}

/// Whether a call is one of many items (`map` and the like), which a pool's
/// progress bars show, or a single `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Many,
    One,
}

/// The part of a pool that every call goes through.
pub struct Engine {
    dispatcher: Dispatcher,
    workers: usize,
    calls: CallOptions,
    closed: AtomicBool,
    /// The kind of pool: `process`, `thread`, `serial` or `mpi`.
    kind: &'static str,
}

impl Engine {
    /// Starts a pool of `kind`: its workers and what drives them.
    pub(crate) fn start(
        kind: Kind,
        workers: WorkerOptions,
        calls: CallOptions,
    ) -> Result<Self, Error> {
        let count = workers.count;
        let dispatcher = match kind {
            Kind::Process => process_dispatcher(workers)?,
            Kind::Thread => Dispatcher::threaded(
                |options| Ok(Box::new(ThreadBackend::new(options.ring_size)?)),
                workers,
            )?,
            Kind::Serial => Dispatcher::inline(|_| Ok(Box::new(SerialBackend::new()))),
        };
        let name = match kind {
            Kind::Process => "process",
            Kind::Thread => "thread",
            Kind::Serial => "serial",
        };
        Ok(Engine::new(dispatcher, count, calls, name))
    }

    /// Starts a pool over the other ranks of the MPI job: on each, a pool of
    /// `per_rank` worker processes (by default, as many as its host has
    /// CPUs) run with `remote`.
    #[cfg(feature = "mpi")]
    pub(crate) fn start_mpi(
        per_rank: Option<usize>,
        remote: WorkerOptions,
        calls: CallOptions,
    ) -> Result<Self, Error> {
        use crate::backend::mpi::MpiBackend;
        let ranks = crate::api::mpi_pool::start_ranks(per_rank, &remote)?;
        let count: usize = ranks.iter().map(|rank| rank.workers as usize).sum();
        // The ranks' pools retire, initialize and limit their workers; here
        // each rank is one worker of the seam.
        let local = WorkerOptions {
            count: ranks.len(),
            max_tasks: None,
            init: None,
            memory_limit: None,
            ring_size: remote.ring_size,
        };
        let dispatcher = Dispatcher::threaded(
            move |_| Ok(Box::new(MpiBackend::new(ranks)?) as Box<dyn crate::backend::Backend>),
            local,
        )?;
        Ok(Engine::new(dispatcher, count, calls, "mpi"))
    }

    fn new(dispatcher: Dispatcher, workers: usize, calls: CallOptions, kind: &'static str) -> Self {
        Engine {
            dispatcher,
            workers,
            calls,
            closed: AtomicBool::new(false),
            kind,
        }
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers
    }

    /// Starts a call of `task` over `items`, with the pool's options as
    /// `overrides` change them.
    pub(crate) fn start_call<'a, F, Args, I>(
        &self,
        task: &F,
        items: I,
        overrides: Overrides,
        shape: Shape,
    ) -> Result<Running<'a>, Error>
    where
        F: Task<Args>,
        I: Iterator<Item = Args> + 'a,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let chunk_size = overrides.chunk_size.or(self.calls.chunk_size);
        if chunk_size == Some(0) {
            return Err(Error::Config("a chunk holds at least one item"));
        }
        if overrides.timeout == Some(Duration::ZERO) {
            return Err(Error::Config("a timeout must be longer than zero"));
        }
        let timeout = overrides.timeout.or(self.calls.timeout);
        let watch = Watch {
            #[cfg(feature = "progress")]
            progress: match overrides.progress {
                Some(bar) => Some(Shown::Bar(bar)),
                None if self.calls.progress && shape == Shape::Many => Some(Shown::Own),
                None => None,
            },
            #[cfg(feature = "tracing")]
            pool: self.kind,
            #[cfg(feature = "tracing")]
            chunk_size,
        };
        #[cfg(not(feature = "progress"))]
        let _ = shape;
        let mut plan = match chunk_size {
            Some(size) => ChunkPlan::fixed(size),
            None => ChunkPlan::new(self.workers, items.size_hint()),
        };
        if let Some(max) = self.calls.max_tasks {
            plan = plan.at_most(max);
        }
        let route = self.dispatcher.route()?;
        // Enough chunks out that no worker waits on the caller: each holds
        // two, and one more per worker is on its way. A call whose worker is
        // the caller runs each chunk as it sends it.
        let window = match route.link() {
            Some(_) => 3 * self.workers,
            None => 1,
        };
        Running::start(route, plan, window, timeout, task, items, watch)
    }

    /// Refuses calls from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Closes, lets the work handed over finish, and ends the workers.
    pub(crate) fn join(&self) {
        self.close();
        self.dispatcher.drain();
    }

    /// Closes and ends the workers now.
    pub(crate) fn terminate(&self) {
        self.close();
        self.dispatcher.shut();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.kind)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}
