//! The pool of worker threads.

use crate::api::builder::Builder;
use crate::api::engine::Engine;
use crate::api::pool::{engine_pool, inherent_calls};
use crate::error::Error;

/// A pool of threads in this process, with the calls and the behaviour of a
/// [`ProcessPool`](crate::ProcessPool): tasks, items and results travel
/// encoded as they would between processes, and a panic in a task comes back
/// as that item's error.
///
/// Use it to compare with processes, or where forking is not wanted. What
/// processes add, it cannot give: a task that crashes or calls
/// `std::process::exit` takes the whole program with it, and
/// [`terminate`](crate::Pool::terminate) cannot stop a busy thread (it is
/// left to finish its task, and its result is thrown away).
///
/// ```
/// use forkmap::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// assert_eq!(pool.map(|x: u64| x * 2, 0..4)?, [0, 2, 4, 6]);
/// # Ok::<(), forkmap::Error>(())
/// ```
pub struct ThreadPool {
    engine: Engine,
}

impl ThreadPool {
    /// Starts `workers` worker threads, with every other option at its
    /// default. Fails with [`Error::Config`] for zero workers.
    ///
    /// ```
    /// let pool = forkmap::ThreadPool::new(3)?;
    /// assert_eq!(pool.workers(), 3);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn new(workers: usize) -> Result<Self, Error> {
        Self::builder().workers(workers).build()
    }

    /// Options for a new pool, as for a process pool.
    ///
    /// ```
    /// let pool = forkmap::ThreadPool::builder().workers(2).chunk_size(1).build()?;
    /// assert_eq!(pool.map(|x: u64| x + 1, 0..3)?, [1, 2, 3]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn builder() -> Builder<ThreadPool> {
        Builder::new()
    }

    pub(crate) fn from_engine(engine: Engine) -> Self {
        ThreadPool { engine }
    }
}

inherent_calls!(ThreadPool);
engine_pool!(ThreadPool);
