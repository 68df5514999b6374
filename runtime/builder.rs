//! The options a pool of workers is started with.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::dispatch::{Crew, Dispatcher, Kind};
use crate::engine::Engine;
use crate::error::Error;
use crate::frame::{self, ToWorker};
use crate::task::Task;
use crate::{ProcessPool, ThreadPool};

/// Sets up a [`ProcessPool`] or a [`ThreadPool`]; made by their `builder()`.
///
/// ```
/// use forkmap::ProcessPool;
///
/// fn warm_up() {
///     // Runs once in each worker, before its first task.
/// }
///
/// let pool = ProcessPool::builder()
///     .workers(2)
///     .chunk_size(100)
///     .max_tasks_per_worker(10_000)
///     .initializer(warm_up)
///     .build()?;
/// assert_eq!(pool.map(|x: u64| x + 1, 0..3)?, [1, 2, 3]);
/// # Ok::<(), forkmap::Error>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<P> {
    workers: Option<usize>,
    chunk_size: Option<usize>,
    max_tasks: Option<usize>,
    /// The initializer's `Init` frame, or why it could not be made.
    init: Option<Result<Vec<u8>, Error>>,
    pool: PhantomData<fn() -> P>,
}

impl<P> Builder<P> {
    pub(crate) fn new() -> Self {
        Builder {
            workers: None,
            chunk_size: None,
            max_tasks: None,
            init: None,
            pool: PhantomData,
        }
    }

    /// The number of workers; by default the number of CPUs this process
    /// may use ([`std::thread::available_parallelism`]).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// How many items travel to a worker at a time. By default the size
    /// adapts: an input of known length is cut into about four chunks per
    /// worker, and an input of unknown length starts with one item per
    /// chunk and grows, so a short input still spreads over every worker
    /// and a long one travels in large chunks.
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.chunk_size = Some(items);
        self
    }

    /// Replaces each worker with a fresh one after it has run `items` items,
    /// as Python's `maxtasksperchild` does: a way to return memory that a
    /// leaky task holds. Chunks are then cut to at most `items` items.
    pub fn max_tasks_per_worker(mut self, items: usize) -> Self {
        self.max_tasks = Some(items);
        self
    }

    /// Runs `init` once in each worker, before its first task, and again in
    /// every worker that replaces one. It is a function of no arguments
    /// returning `()`: a plain function, a closure that captures nothing, or
    /// a [`#[remote]`](crate::remote) factory's value.
    ///
    /// If it panics in a worker, every item given to that worker fails with
    /// [`Error::Setup`] saying so.
    pub fn initializer<F>(mut self, init: F) -> Self
    where
        F: Task<(), Output = ()>,
    {
        let mut setup = Vec::new();
        self.init = Some(
            init.__describe(&mut setup)
                .map_err(|e| e.to_string())
                .and_then(|described| {
                    let mut frame = Vec::with_capacity(setup.len() + 64);
                    frame::begin(
                        &mut frame,
                        &ToWorker::Init {
                            entry: described.entry,
                        },
                    );
                    frame.extend_from_slice(&setup);
                    frame::finish(&mut frame).map_err(|e| e.to_string())?;
                    Ok(frame)
                })
                .map_err(|reason| Error::Codec {
                    function: std::any::type_name::<F>().to_owned(),
                    what: "encode the initializer".into(),
                    reason,
                }),
        );
        self
    }

    /// Checks the options and starts the dispatcher and its workers.
    fn start(self, kind: Kind) -> Result<Engine, Error> {
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
        if workers == 0 {
            return Err(Error::Config("a pool needs at least one worker"));
        }
        if self.chunk_size == Some(0) {
            return Err(Error::Config("a chunk holds at least one item"));
        }
        if self.max_tasks == Some(0) {
            return Err(Error::Config("a worker must be allowed at least one task"));
        }
        let init = self.init.transpose()?.map(Arc::new);
        let crew = Crew {
            kind,
            workers,
            max_tasks: self.max_tasks.map(|max| max as u64),
            init,
        };
        Ok(Engine::workers(
            Dispatcher::start(crew)?,
            workers,
            self.chunk_size,
            self.max_tasks,
        ))
    }
}

impl Builder<ProcessPool> {
    /// Forks the workers. Fails with [`Error::Config`] for an option of zero,
    /// and with [`Error::Spawn`] when the system cannot fork.
    pub fn build(self) -> Result<ProcessPool, Error> {
        self.start(Kind::Process).map(ProcessPool::from_engine)
    }
}

impl Builder<ThreadPool> {
    /// Starts the worker threads. Fails with [`Error::Config`] for an option
    /// of zero, and with [`Error::Spawn`] when a thread cannot start.
    pub fn build(self) -> Result<ThreadPool, Error> {
        self.start(Kind::Thread).map(ThreadPool::from_engine)
    }
}

impl<P> std::fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("chunk_size", &self.chunk_size)
            .field("max_tasks_per_worker", &self.max_tasks)
            .field("initializer", &self.init.is_some())
            .finish()
    }
}
