//! The process pool: the calls users make.

use serde::Serialize;

use crate::call::Ordered;
use crate::dispatch::Dispatcher;
use crate::error::Error;
use crate::handle::AsyncResult;
use crate::task::Task;

/// A pool of forked worker processes.
///
/// `ProcessPool::new(n)` forks `n` workers; each call sends a function and
/// its items to them and gathers the results in input order. A panic in a
/// task comes back as an [`Error`] for that item, and a worker that dies is
/// replaced; either way the pool keeps serving. Dropping the pool ends and
/// reaps every worker.
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
    dispatcher: Dispatcher,
    workers: usize,
}

impl ProcessPool {
    /// Forks `workers` worker processes.
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
        if workers == 0 {
            return Err(Error::Config("a pool needs at least one worker"));
        }
        Ok(ProcessPool {
            dispatcher: Dispatcher::start(workers)?,
            workers,
        })
    }

    /// The number of worker processes.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Calls `f` on every item, in the workers, and returns the results in
    /// input order.
    ///
    /// `f` takes one argument: a plain function, a closure that captures
    /// nothing, or a [`#[remote]`](crate::remote) factory's value. Every item
    /// runs even when some fail; the error returned is then the one of the
    /// first failing item.
    ///
    /// ```
    /// let pool = forkmap::ProcessPool::new(2)?;
    /// let doubled = pool.map(|x: u64| x * 2, 0..5)?;
    /// assert_eq!(doubled, [0, 2, 4, 6, 8]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn map<F, A, I>(&self, f: F, items: I) -> Result<Vec<F::Output>, Error>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
        A: Serialize,
    {
        self.starmap(f, items.into_iter().map(|item| (item,)))
    }

    /// Calls `f` on every tuple of arguments, spread into `f`'s parameters as
    /// Python's `starmap` does, and returns the results in input order.
    ///
    /// ```
    /// fn slow_pow(x: u64, y: u32) -> u64 {
    ///     x.pow(y)
    /// }
    ///
    /// let pool = forkmap::ProcessPool::new(2)?;
    /// let squares = pool.starmap(slow_pow, (0..5).map(|x| (x, 2)))?;
    /// assert_eq!(squares, [0, 1, 4, 9, 16]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>, Error>
    where
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
        Args: Serialize,
    {
        let mut values = Vec::new();
        let mut first_error = None;
        for result in Ordered::start(self.dispatcher.link(), self.workers, &f, items.into_iter())? {
            match result {
                Ok(value) if first_error.is_none() => values.push(value),
                Err(error) if first_error.is_none() => first_error = Some(error),
                _ => {}
            }
        }
        first_error.map_or(Ok(values), Err)
    }

    /// Calls `f` once with the tuple `args` in a worker and waits for the
    /// result.
    ///
    /// ```
    /// fn add(a: i32, b: i32) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = forkmap::ProcessPool::new(1)?;
    /// assert_eq!(pool.apply(add, (2, 3))?, 5);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output, Error>
    where
        F: Task<Args>,
        Args: Serialize + 'static,
    {
        self.apply_async(f, args).get()
    }

    /// Starts `f` with the tuple `args` in a worker and returns at once with
    /// a handle to its result.
    ///
    /// ```
    /// fn add(a: i32, b: i32) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = forkmap::ProcessPool::new(2)?;
    /// let first = pool.apply_async(add, (1, 2));
    /// let second = pool.apply_async(add, (3, 4));
    /// assert_eq!(first.get()? + second.get()?, 10);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn apply_async<F, Args>(&self, f: F, args: Args) -> AsyncResult<F::Output>
    where
        F: Task<Args>,
        Args: Serialize + 'static,
    {
        AsyncResult::new(
            Ordered::start(
                self.dispatcher.link(),
                self.workers,
                &f,
                std::iter::once(args),
            )
            .map(Ordered::into_sent),
        )
    }
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}
