//! What the three pools share: the one place where a pool's kind of worker
//! is chosen, how a call's chunks are sized, and whether the pool still
//! takes calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::process::ProcessBackend;
use crate::backend::serial::SerialBackend;
use crate::backend::thread::ThreadBackend;
use crate::call::chunk::ChunkPlan;
use crate::call::Running;
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

/// How a call is cut into chunks and how long its items may run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallOptions {
    pub(crate) chunk_size: Option<usize>,
    pub(crate) max_tasks: Option<usize>,
    /// The longest an item may run, unless a call says otherwise.
    pub(crate) timeout: Option<Duration>,
}

/// The part of a pool that every call goes through.
pub struct Engine {
    dispatcher: Dispatcher,
    workers: usize,
    calls: CallOptions,
    closed: AtomicBool,
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
        Ok(Engine::new(dispatcher, count, calls))
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
        Ok(Engine::new(dispatcher, count, calls))
    }

    fn new(dispatcher: Dispatcher, workers: usize, calls: CallOptions) -> Self {
        Engine {
            dispatcher,
            workers,
            calls,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers
    }

    /// The longest an item may run, unless a call says otherwise.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.calls.timeout
    }

    /// Starts a call of `task` over `items`, each item killed after
    /// `timeout`.
    pub(crate) fn start_call<'a, F, Args, I>(
        &self,
        task: &F,
        items: I,
        timeout: Option<Duration>,
    ) -> Result<Running<'a>, Error>
    where
        F: Task<Args>,
        I: Iterator<Item = Args> + 'a,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut plan = match self.calls.chunk_size {
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
        Running::start(route, plan, window, timeout, task, items)
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
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}
