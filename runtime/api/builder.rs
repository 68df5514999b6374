//! The options a pool of workers is started with.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::api::engine::{CallOptions, Engine, Kind};
use crate::dispatch::scheduler::WorkerOptions;
use crate::error::Error;
use crate::platform::link::{DEFAULT_RING_SIZE, RING_SIZES};
use crate::protocol::frame;
use crate::protocol::message::ToWorker;
use crate::protocol::task::Task;
use crate::{ProcessPool, ThreadPool};

/// The most workers a pool may have (of a rank, for an `MpiPool`).
const MAX_WORKERS: usize = 1 << 16;

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
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    ring_size: Option<usize>,
    #[cfg(feature = "progress")]
    progress: bool,
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
            timeout: None,
            memory_limit: None,
            ring_size: None,
            #[cfg(feature = "progress")]
            progress: false,
            init: None,
            pool: PhantomData,
        }
    }

    /// The number of workers, from 1 to 65,536; by default the number of
    /// CPUs this process may use ([`std::thread::available_parallelism`]).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// How many items travel to a worker at a time. By default the size
    /// adapts: an input of known length is cut into about four chunks per
    /// worker, and an input of unknown length starts with one item per
    /// chunk and grows, so a short input still spreads over every worker
    /// and a long one travels in large chunks. One call's chunk size is set
    /// with [`with_chunk_size`](crate::Pool::with_chunk_size).
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.chunk_size = Some(items);
        self
    }

    /// The size in bytes of each of the two rings in shared memory between
    /// the pool and each of its workers (one each way): a power of two from
    /// 4 KiB to 1 GiB, by default 1 MiB.
    ///
    /// A frame of up to half a ring (a chunk of items, or a batch of their
    /// results) goes through shared memory, copied once each way; a larger
    /// one goes through a socket, which costs two system calls and a copy
    /// in the kernel more. Each ring is a memory file mapped by both
    /// sides: only the pages used become resident, so a large ring costs
    /// memory only when large frames use it. Items or results of more than
    /// a few hundred KiB each are the reason to raise it; a pool of many
    /// workers on a small machine, the reason to lower it.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    ///
    /// let pool = ProcessPool::builder().workers(2).ring_size(8 << 20).build()?;
    /// let sizes = pool.map(|v: Vec<u8>| v.len(), vec![vec![0u8; 1 << 20]; 4])?;
    /// assert_eq!(sizes, [1 << 20; 4]);
    ///
    /// let error = ProcessPool::builder().ring_size(1000).build().unwrap_err();
    /// assert!(error.to_string().contains("power of two"));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn ring_size(mut self, bytes: usize) -> Self {
        self.ring_size = Some(bytes);
        self
    }

    /// Draws a progress bar on stderr for each call of many items (`map`,
    /// `starmap`, `imap`, `imap_unordered`, their `_results` and `_async`
    /// forms; not `apply`): items done of the total when the input's length
    /// is known, the rate and the time left, and how many items failed. It
    /// is hidden when stderr is not a terminal, and never written to
    /// stdout. Off by default; one call's own bar is given with
    /// [`with_progress`](crate::Pool::with_progress).
    ///
    /// A bar moves as results come back: an `imap`'s as it is read, an
    /// async call's as its handle is waited on.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    ///
    /// let pool = ProcessPool::builder().workers(2).progress(true).build()?;
    /// assert_eq!(pool.map(|x: u64| x * 2, 0..1000)?.len(), 1000);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
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
        let () = F::__CAPTURES_NOTHING;
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
                    index: None,
                    what: "encode the initializer".into(),
                    reason,
                }),
        );
        self
    }

    /// Sets the timeout of every item (pools of processes only).
    fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets each worker's memory limit (pools of processes only).
    fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Checks the options and starts the dispatcher and its workers: `workers`
    /// of them, by default as many as this process may use CPUs.
    fn start(self, kind: Kind) -> Result<Engine, Error> {
        let (workers, options, calls) = self.checked()?;
        let count = workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
        Engine::start(kind, WorkerOptions { count, ..options }, calls)
    }

    /// The options, checked: the number of workers asked for, what the
    /// workers run with (their count left at zero), and what calls do.
    fn checked(self) -> Result<(Option<usize>, WorkerOptions, CallOptions), Error> {
        if self.workers == Some(0) {
            return Err(Error::Config("a pool needs at least one worker"));
        }
        if self.workers > Some(MAX_WORKERS) {
            return Err(Error::Config("a pool has at most 65,536 workers"));
        }
        if self.chunk_size == Some(0) {
            return Err(Error::Config("a chunk holds at least one item"));
        }
        if self.max_tasks == Some(0) {
            return Err(Error::Config("a worker must be allowed at least one task"));
        }
        if self.memory_limit == Some(0) {
            return Err(Error::Config("a memory limit must be more than zero bytes"));
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::Config("a timeout must be longer than zero"));
        }
        let ring_size = self.ring_size.unwrap_or(DEFAULT_RING_SIZE);
        if !ring_size.is_power_of_two() || !RING_SIZES.contains(&ring_size) {
            return Err(Error::Config(
                "a ring size is a power of two from 4 KiB to 1 GiB",
            ));
        }
        let init = self.init.transpose()?.map(Arc::new);
        let options = WorkerOptions {
            count: 0,
            max_tasks: self.max_tasks.map(|max| max as u64),
            init,
            memory_limit: self.memory_limit,
            ring_size,
        };
        let calls = CallOptions {
            chunk_size: self.chunk_size,
            max_tasks: self.max_tasks,
            timeout: self.timeout,
            #[cfg(feature = "progress")]
            progress: self.progress,
        };
        Ok((self.workers, options, calls))
    }
}

impl Builder<ProcessPool> {
    /// Kills the worker running an item that has run longer than `timeout`:
    /// that item fails with [`Error::Timeout`], the worker is replaced, and
    /// every other item still runs. The timeout of single calls is set with
    /// [`ProcessPool::with_timeout`].
    ///
    /// A [`#[remote]`](crate::remote) factory's body, which builds the
    /// closure in each worker, has the same time: if it runs longer, the
    /// items of the chunk its worker holds fail with [`Error::Timeout`]. The
    /// pool's [`initializer`](Builder::initializer) has no time limit.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = ProcessPool::builder()
    ///     .workers(2)
    ///     .timeout(Duration::from_millis(500))
    ///     .build()?;
    /// let results: Vec<_> = pool.imap(nap, [10, 60_000, 20]).collect();
    /// assert_eq!(results[0].as_ref().ok(), Some(&10));
    /// assert!(results[1].as_ref().unwrap_err().is_timeout());
    /// assert_eq!(results[2].as_ref().ok(), Some(&20));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_timeout(timeout)
    }

    /// Kills the worker whose resident memory has grown by more than
    /// `bytes` since it started: the item it was running fails with
    /// [`Error::OutOfMemory`], the worker is replaced, and every other item
    /// still runs. A worker that grew past the limit between items (memory
    /// that earlier items leaked) is replaced without failing anything.
    ///
    /// The pool looks at each busy worker's memory every 10 ms, so a task
    /// that allocates very fast can go past the limit by what it touches in
    /// that time before it is stopped. Memory reserved but never touched
    /// does not count, nor do pages shared with other processes (the
    /// worker's rings, the program's code and files it maps): only the
    /// worker's own anonymous memory.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    ///
    /// fn fill(mib: usize) -> usize {
    ///     let mut kept = Vec::new();
    ///     for _ in 0..mib {
    ///         kept.push(vec![1u8; 1 << 20]);
    ///         std::thread::sleep(std::time::Duration::from_millis(1));
    ///     }
    ///     kept.len()
    /// }
    ///
    /// let pool = ProcessPool::builder()
    ///     .workers(1)
    ///     .memory_limit(128 << 20)
    ///     .build()?;
    /// assert_eq!(pool.apply(fill, (16,))?, 16);
    /// assert!(pool.apply(fill, (4096,)).unwrap_err().is_out_of_memory());
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn memory_limit(self, bytes: u64) -> Self {
        self.with_memory_limit(bytes)
    }

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

#[cfg(feature = "mpi")]
#[cfg_attr(docsrs, doc(cfg(feature = "mpi")))]
impl Builder<crate::MpiPool> {
    /// Kills the worker running an item that has run longer than `timeout`,
    /// on whichever rank: as [`Builder::<ProcessPool>::timeout`] does.
    ///
    /// ```no_run
    /// # // Needs an MPI job: `mpirun -n 3 <program>`.
    /// let pool = forkmap::MpiPool::builder()
    ///     .timeout(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_timeout(timeout)
    }

    /// Each worker's memory limit, on every rank: as
    /// [`Builder::<ProcessPool>::memory_limit`] does.
    ///
    /// ```no_run
    /// # // Needs an MPI job: `mpirun -n 3 <program>`.
    /// let pool = forkmap::MpiPool::builder().memory_limit(1 << 30).build()?;
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn memory_limit(self, bytes: u64) -> Self {
        self.with_memory_limit(bytes)
    }

    /// Starts a pool of worker processes on every other rank of the job
    /// (as many on each as its host has CPUs, or
    /// [`workers`](Builder::workers) each), and checks that every rank runs
    /// this very build of the program.
    ///
    /// Fails with [`Error::Config`] outside an MPI job, without
    /// [`forkmap::init()`](crate::init) first, with a single rank, or while
    /// another `MpiPool` exists; with [`Error::Spawn`] when a rank's pool
    /// cannot start or a rank runs another build.
    pub fn build(self) -> Result<crate::MpiPool, Error> {
        let (workers, options, calls) = self.checked()?;
        Engine::start_mpi(workers, options, calls).map(crate::MpiPool::from_engine)
    }
}

impl<P> std::fmt::Debug for Builder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("chunk_size", &self.chunk_size)
            .field("max_tasks_per_worker", &self.max_tasks)
            .field("timeout", &self.timeout)
            .field("memory_limit", &self.memory_limit)
            .field("ring_size", &self.ring_size)
            .field("initializer", &self.init.is_some())
            .finish_non_exhaustive()
    }
}
