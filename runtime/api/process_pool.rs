//! The pool of forked worker processes.

use std::time::Duration;

use crate::api::builder::Builder;
use crate::api::engine::Engine;
use crate::api::pool::{engine_pool, inherent_calls};
use crate::api::view::Configured;
use crate::error::Error;

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
/// # Where workers come from
///
/// Workers are forked from forkmap's fork server, a fresh run of the
/// program's own binary that never runs its `main` or its threads, started
/// the first time a pool needs a worker (see [`forkmap::init`](fn@crate::init)
/// for what workers see, and why). No set-up call is needed, from any thread.
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

    /// This pool, for calls whose items may each run at most `timeout`:
    /// the worker running an item that takes longer is killed, the item
    /// fails with [`Error::Timeout`], the worker is replaced, and every other
    /// item still runs. It overrides the builder's
    /// [`timeout`](Builder::timeout) for the calls made through it, and
    /// chains with the view's other options ([`Configured`]).
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
    /// let pool = ProcessPool::new(2)?;
    /// let hurried = pool.with_timeout(Duration::from_millis(300));
    /// let err = hurried.apply(nap, (60_000,)).unwrap_err();
    /// assert!(err.is_timeout());
    /// // The pool itself has no timeout, and the same workers serve it.
    /// assert_eq!(pool.apply(nap, (400,))?, 400);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Configured<'_, ProcessPool> {
        Configured::new(self).with_timeout(timeout)
    }
}

inherent_calls!(ProcessPool);
engine_pool!(ProcessPool);
