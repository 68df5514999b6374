//! What the three pools share: where a call's chunks run, how they are
//! sized, and whether the pool still takes calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Dispatcher;
use crate::call::chunk::ChunkPlan;
use crate::call::{Runner, Running};
use crate::error::Error;
use crate::protocol::task::Task;

/// The part of a pool that every call goes through.
#[derive(Debug)]
pub struct Engine {
    place: Place,
    workers: usize,
    chunk_size: Option<usize>,
    max_tasks: Option<usize>,
    /// The longest an item may run, unless a call says otherwise.
    timeout: Option<Duration>,
    closed: AtomicBool,
    /// Set by `terminate`; serial calls in progress watch it.
    terminated: Arc<AtomicBool>,
}

/// Where chunks run.
enum Place {
    /// On the workers of a dispatcher.
    Workers(Dispatcher),
    /// In the caller's thread.
    Here,
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::Workers(_) => "Workers",
            Place::Here => "Here",
        })
    }
}

impl Engine {
    /// An engine whose chunks run on `dispatcher`'s `workers` workers.
    pub(crate) fn workers(
        dispatcher: Dispatcher,
        workers: usize,
        chunk_size: Option<usize>,
        max_tasks: Option<usize>,
        timeout: Option<Duration>,
    ) -> Self {
        Engine {
            place: Place::Workers(dispatcher),
            workers,
            chunk_size,
            max_tasks,
            timeout,
            closed: AtomicBool::new(false),
            terminated: Arc::default(),
        }
    }

    /// An engine that runs every chunk in the caller's thread.
    pub(crate) fn here() -> Self {
        Engine {
            place: Place::Here,
            workers: 1,
            chunk_size: None,
            max_tasks: None,
            timeout: None,
            closed: AtomicBool::new(false),
            terminated: Arc::default(),
        }
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers
    }

    /// The longest an item may run, unless a call says otherwise.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Starts a call of `task` over `items`, each item killed after
    /// `timeout`.
    pub(crate) fn start<'a, F, Args, I>(
        &self,
        task: &F,
        items: I,
        timeout: Option<Duration>,
    ) -> Result<Running<'a>, Error>
    where
        F: Task<Args>,
        I: Iterator<Item = Args> + 'a,
        Args: Serialize,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut plan = match self.chunk_size {
            Some(size) => ChunkPlan::fixed(size),
            None => ChunkPlan::new(self.workers, items.size_hint()),
        };
        if let Some(max) = self.max_tasks {
            plan = plan.at_most(max);
        }
        let (runner, window) = match &self.place {
            // Enough chunks out that no worker waits on the caller: each
            // holds two, and one more per worker is on its way.
            Place::Workers(dispatcher) => (
                Runner::Pool(Arc::clone(dispatcher.link())),
                3 * self.workers,
            ),
            Place::Here => (Runner::Here(Arc::clone(&self.terminated)), 1),
        };
        Running::start(runner, plan, window, timeout, task, items)
    }

    /// Refuses calls from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Closes, lets the work handed over finish, and ends the workers.
    pub(crate) fn join(&self) {
        self.close();
        if let Place::Workers(dispatcher) = &self.place {
            dispatcher.drain();
        }
    }

    /// Closes and ends the workers now.
    pub(crate) fn terminate(&self) {
        self.close();
        self.terminated.store(true, Ordering::Release);
        if let Place::Workers(dispatcher) = &self.place {
            dispatcher.shut();
        }
    }
}
