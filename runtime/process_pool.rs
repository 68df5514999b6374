//! The pool of forked worker processes.

use crate::builder::Builder;
use crate::engine::Engine;
use crate::error::Error;
use crate::pool::inherent_calls;

/// A pool of forked worker processes: crash isolation, and code that need
/// not be thread-safe.
///
/// `ProcessPool::new(n)` forks `n` workers; each call sends a function and
/// its items to them and gathers the results. A panic in a task comes back
/// as an [`Error`] for that item, and a worker that dies is replaced; either
/// way the pool keeps serving. Dropping the pool ends and reaps every worker.
/// Its calls are those of the [`Pool`](crate::Pool) trait.
///
/// ```
/// use forkmap::{remote, ProcessPool};
///
/// #[remote]
/// fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
///     move |x| x.pow(y)
/// }
///
/// let pool = ProcessPool::new(2)?;
/// assert_eq!(pool.map(power_factory(2), 0..5)?, [0, 1, 4, 9, 16]);
/// # Ok::<(), forkmap::Error>(())
/// ```
///
/// # Forking and threads
///
/// Workers are forked from a thread the pool owns, while the rest of the
/// program keeps running. A fork copies only the forking thread: a lock that
/// another thread of the program held at that moment (the lock of `stdout`
/// while it prints, a lock inside a C library) stays locked in the worker
/// forever, and a task that takes it hangs. The allocator and the pool's own
/// state are safe. Until forkmap has a fork server, create pools before
/// starting threads that hold locks, or keep such threads away from the
/// locks your tasks use.
pub struct ProcessPool {
    engine: Engine,
}

impl ProcessPool {
    /// Forks `workers` worker processes, with every other option at its
    /// default; [`builder`](ProcessPool::builder) sets them.
    ///
    /// Fails with [`Error::Config`] for zero workers, and with
    /// [`Error::Spawn`] when the system cannot fork.
    ///
    /// ```
    /// let pool = forkmap::ProcessPool::new(3)?;
    /// assert_eq!(pool.workers(), 3);
    /// assert!(forkmap::ProcessPool::new(0).is_err());
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn new(workers: usize) -> Result<Self, Error> {
        Self::builder().workers(workers).build()
    }

    /// Options for a new pool: workers, chunk size, worker recycling and an
    /// initializer.
    ///
    /// ```
    /// let pool = forkmap::ProcessPool::builder().build()?;
    /// assert_eq!(pool.workers(), std::thread::available_parallelism()?.get());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> Builder<ProcessPool> {
        Builder::new()
    }

    pub(crate) fn from_engine(engine: Engine) -> Self {
        ProcessPool { engine }
    }
}

inherent_calls!(ProcessPool);
