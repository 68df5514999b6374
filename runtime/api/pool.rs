//! The [`Pool`] trait: the calls every pool offers, whatever runs them.

use crate::api::engine::Engine;
use crate::api::handle::AsyncResult;
use crate::api::stream::{Imap, ImapUnordered};
use crate::error::Error;
use crate::protocol::task::Task;

/// Keeps [`Pool`] to the pools of this crate, so that methods can be added
/// to it without breaking anyone.
mod sealed {
    /// Gives the trait's provided methods the pool's engine.
    pub trait Sealed {
        fn engine(&self) -> &super::Engine;

        /// The longest each item of this pool's calls may run.
        fn timeout(&self) -> Option<std::time::Duration> {
            self.engine().timeout()
        }
    }
}

pub(crate) use sealed::Sealed;

/// The calls of Python's `multiprocessing.Pool`, offered by
/// [`ProcessPool`](crate::ProcessPool), [`ThreadPool`](crate::ThreadPool) and
/// [`SerialPool`](crate::SerialPool) alike, so code can be written once over
/// any of them.
///
/// Each pool also has these calls as inherent methods, so `pool.map(..)`
/// works without importing the trait.
///
/// What a pool runs is a [`Task`]: a plain function, a closure that captures
/// nothing, or the value of a [`#[remote]`](crate::remote) factory. Items and
/// results must be [`Travel`](crate::Travel) (owned serde data), and are
/// encoded the same way on every pool, so code that runs on one runs on the
/// others.
///
/// ```
/// use forkmap::{Pool, ProcessPool, SerialPool, ThreadPool};
///
/// fn total<P: Pool>(pool: &P) -> Result<u64, forkmap::Error> {
///     Ok(pool.map(|x: u64| x * x, 1..=10)?.into_iter().sum())
/// }
///
/// assert_eq!(total(&ProcessPool::new(2)?)?, 385);
/// assert_eq!(total(&ThreadPool::new(2)?)?, 385);
/// assert_eq!(total(&SerialPool::new())?, 385);
/// # Ok::<(), forkmap::Error>(())
/// ```
pub trait Pool: Sealed {
    /// The number of workers.
    fn workers(&self) -> usize {
        self.engine().worker_count()
    }

    /// Calls `f` on every item and returns the results in input order.
    ///
    /// `f` takes one argument. Every item runs even when some fail; the
    /// error returned is then the one of the first failing item.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// assert_eq!(pool.map(|x: u64| x * 2, 0..5)?, [0, 2, 4, 6, 8]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn map<F, A, I>(&self, f: F, items: I) -> Result<Vec<F::Output>, Error>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap(self, f, items.into_iter().map(|item| (item,)))
    }

    /// Calls `f` on every tuple of arguments, spread into `f`'s parameters as
    /// Python's `starmap` does, and returns the results in input order.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn pow(x: u64, y: u32) -> u64 {
    ///     x.pow(y)
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// assert_eq!(pool.starmap(pow, (0..5).map(|x| (x, 2)))?, [0, 1, 4, 9, 16]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn starmap<F, Args, I>(&self, f: F, items: I) -> Result<Vec<F::Output>, Error>
    where
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap(self, f, items)
    }

    /// Calls `f` on every item lazily: an iterator of results in input
    /// order, each `Ok` or the item's error.
    ///
    /// The input is read only as results are taken, with a bounded number of
    /// chunks out at once, so an endless input works (Python's `imap` reads
    /// the whole input first).
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let firsts: Vec<u64> = pool
    ///     .imap(|x: u64| x * 2, 0u64..)
    ///     .take(5)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(firsts, [0, 2, 4, 6, 8]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn imap<'a, F, A, I>(&self, f: F, items: I) -> Imap<'a, F::Output>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        let () = F::__CAPTURES_NOTHING;
        run::imap(self, f, items.into_iter().map(|item| (item,)))
    }

    /// Like [`imap`](Pool::imap), but hands each result out as soon as it
    /// is in, paired with the index of its item.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let mut pairs = pool
    ///     .imap_unordered(|x: u64| x * 10, 0..4)
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// pairs.sort();
    /// assert_eq!(pairs, [(0, 0), (1, 10), (2, 20), (3, 30)]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn imap_unordered<'a, F, A, I>(&self, f: F, items: I) -> ImapUnordered<'a, F::Output>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        let () = F::__CAPTURES_NOTHING;
        run::imap_unordered(self, f, items.into_iter().map(|item| (item,)))
    }

    /// Starts [`map`](Pool::map) and returns at once with a handle to its
    /// results. The items are read before it returns.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let handle = pool.map_async(|x: u64| x + 1, 0..3);
    /// assert_eq!(handle.get()?, [1, 2, 3]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn map_async<F, A, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap_async(self, f, items.into_iter().map(|item| (item,)))
    }

    /// Starts [`starmap`](Pool::starmap) and returns at once with a handle
    /// to its results. The items are read before it returns.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn add(a: u64, b: u64) -> u64 {
    ///     a + b
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let handle = pool.starmap_async(add, [(1, 2), (3, 4)]);
    /// assert_eq!(handle.get()?, [3, 7]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn starmap_async<F, Args, I>(&self, f: F, items: I) -> AsyncResult<Vec<F::Output>>
    where
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap_async(self, f, items)
    }

    /// Calls `f` once with the tuple `args` in a worker and waits for the
    /// result.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn add(a: i32, b: i32) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = ProcessPool::new(1)?;
    /// assert_eq!(pool.apply(add, (2, 3))?, 5);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output, Error>
    where
        F: Task<Args>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::apply_async(self, f, args).get()
    }

    /// Starts `f` with the tuple `args` in a worker and returns at once with
    /// a handle to its result.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn add(a: i32, b: i32) -> i32 {
    ///     a + b
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let first = pool.apply_async(add, (1, 2));
    /// let second = pool.apply_async(add, (3, 4));
    /// assert_eq!(first.get()? + second.get()?, 10);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn apply_async<F, Args>(&self, f: F, args: Args) -> AsyncResult<F::Output>
    where
        F: Task<Args>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::apply_async(self, f, args)
    }

    /// Takes no more calls: each later call returns [`Error::Closed`]. Calls
    /// made before still run to their end: handles give their results, and
    /// an `imap` goes on reading its input.
    ///
    /// ```
    /// use forkmap::{Error, Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(1)?;
    /// pool.close();
    /// assert!(matches!(pool.map(|x: u64| x, 0..3), Err(Error::Closed)));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn close(&self) {
        self.engine().close();
    }

    /// Closes the pool, waits until everything handed to it has run (the
    /// tasks of async calls, even those whose handles were dropped), and
    /// ends the workers. Handles already made still give their results; an
    /// `imap` still being read gives [`Error::Closed`] for what it had not
    /// handed over.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let handle = pool.apply_async(|x: u64| x + 1, (41,));
    /// pool.join();
    /// assert_eq!(handle.get()?, 42);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn join(&self) {
        self.engine().join();
    }

    /// Closes the pool and ends its workers now, killing busy processes;
    /// calls in progress return [`Error::Closed`]. Dropping a pool does the
    /// same.
    ///
    /// ```
    /// use forkmap::{Error, Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// pool.terminate();
    /// assert!(matches!(pool.apply(|x: u64| x, (1,)), Err(Error::Closed)));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn terminate(&self) {
        self.engine().terminate();
    }
}

/// The bodies of the calls, shared by [`Pool`]'s methods and the pools'
/// inherent methods.
///
/// Each of those evaluates `Task::__CAPTURES_NOTHING` once and then calls
/// one of these, which do not: a closure that captures variables then fails
/// the build once, in a note that points at the user's call.
pub(crate) mod run {
    use super::Sealed;
    use crate::api::handle::AsyncResult;
    use crate::api::stream::{Imap, ImapUnordered};
    use crate::call::Results;
    use crate::error::Error;
    use crate::protocol::task::Task;

    pub(crate) fn starmap<P, F, Args, I>(pool: &P, f: F, items: I) -> Result<Vec<F::Output>, Error>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        pool.engine()
            .start_call(&f, items.into_iter(), pool.timeout())?
            .collect()
    }

    pub(crate) fn imap<'a, P, F, Args, I>(pool: &P, f: F, items: I) -> Imap<'a, F::Output>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
        I::IntoIter: 'a,
    {
        Imap::new(
            pool.engine()
                .start_call(&f, items.into_iter(), pool.timeout()),
        )
    }

    pub(crate) fn imap_unordered<'a, P, F, Args, I>(
        pool: &P,
        f: F,
        items: I,
    ) -> ImapUnordered<'a, F::Output>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
        I::IntoIter: 'a,
    {
        ImapUnordered::new(
            pool.engine()
                .start_call(&f, items.into_iter(), pool.timeout()),
        )
    }

    pub(crate) fn starmap_async<P, F, Args, I>(
        pool: &P,
        f: F,
        items: I,
    ) -> AsyncResult<Vec<F::Output>>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        let started = pool
            .engine()
            .start_call(&f, items.into_iter(), pool.timeout());
        AsyncResult::new(started.map(|r| r.into_sent()), Results::collect)
    }

    pub(crate) fn apply_async<P, F, Args>(pool: &P, f: F, args: Args) -> AsyncResult<F::Output>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
    {
        let started = pool
            .engine()
            .start_call(&f, std::iter::once(args), pool.timeout());
        AsyncResult::new(started.map(|r| r.into_sent()), Results::single)
    }
}

/// Gives a pool type the calls of [`Pool`] as inherent methods, so that
/// users need not import the trait.
///
/// Each method checks its task itself rather than calling `Pool`'s, so that
/// a capturing closure's error points at the user's call, once.
macro_rules! inherent_calls {
    ($pool:ty) => {
        impl $pool {
            /// The number of workers: [`Pool::workers`](crate::Pool::workers).
            pub fn workers(&self) -> usize {
                $crate::Pool::workers(self)
            }

            /// Calls `f` on every item, results in input order: [`Pool::map`](crate::Pool::map).
            pub fn map<F, A, I>(&self, f: F, items: I) -> Result<Vec<F::Output>, $crate::Error>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap(self, f, items.into_iter().map(|item| (item,)))
            }

            /// Calls `f` on every tuple of arguments: [`Pool::starmap`](crate::Pool::starmap).
            pub fn starmap<F, Args, I>(
                &self,
                f: F,
                items: I,
            ) -> Result<Vec<F::Output>, $crate::Error>
            where
                F: $crate::Task<Args>,
                I: IntoIterator<Item = Args>,
            {
                let () = <F as $crate::Task<Args>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap(self, f, items)
            }

            /// Lazy results in input order: [`Pool::imap`](crate::Pool::imap).
            pub fn imap<'a, F, A, I>(&self, f: F, items: I) -> $crate::Imap<'a, F::Output>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
                I::IntoIter: 'a,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::imap(self, f, items.into_iter().map(|item| (item,)))
            }

            /// Lazy results as they come in, with their indices:
            /// [`Pool::imap_unordered`](crate::Pool::imap_unordered).
            pub fn imap_unordered<'a, F, A, I>(
                &self,
                f: F,
                items: I,
            ) -> $crate::ImapUnordered<'a, F::Output>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
                I::IntoIter: 'a,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::imap_unordered(
                    self,
                    f,
                    items.into_iter().map(|item| (item,)),
                )
            }

            /// Starts a `map` and returns a handle: [`Pool::map_async`](crate::Pool::map_async).
            pub fn map_async<F, A, I>(&self, f: F, items: I) -> $crate::AsyncResult<Vec<F::Output>>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap_async(
                    self,
                    f,
                    items.into_iter().map(|item| (item,)),
                )
            }

            /// Starts a `starmap` and returns a handle: [`Pool::starmap_async`](crate::Pool::starmap_async).
            pub fn starmap_async<F, Args, I>(
                &self,
                f: F,
                items: I,
            ) -> $crate::AsyncResult<Vec<F::Output>>
            where
                F: $crate::Task<Args>,
                I: IntoIterator<Item = Args>,
            {
                let () = <F as $crate::Task<Args>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap_async(self, f, items)
            }

            /// Calls `f` once and waits: [`Pool::apply`](crate::Pool::apply).
            pub fn apply<F, Args>(&self, f: F, args: Args) -> Result<F::Output, $crate::Error>
            where
                F: $crate::Task<Args>,
            {
                let () = <F as $crate::Task<Args>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::apply_async(self, f, args).get()
            }

            /// Starts `f` once and returns a handle: [`Pool::apply_async`](crate::Pool::apply_async).
            pub fn apply_async<F, Args>(&self, f: F, args: Args) -> $crate::AsyncResult<F::Output>
            where
                F: $crate::Task<Args>,
            {
                let () = <F as $crate::Task<Args>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::apply_async(self, f, args)
            }

            /// Takes no more calls: [`Pool::close`](crate::Pool::close).
            pub fn close(&self) {
                $crate::Pool::close(self)
            }

            /// Closes, lets handed-over work finish, ends the workers:
            /// [`Pool::join`](crate::Pool::join).
            pub fn join(&self) {
                $crate::Pool::join(self)
            }

            /// Closes and ends the workers now: [`Pool::terminate`](crate::Pool::terminate).
            pub fn terminate(&self) {
                $crate::Pool::terminate(self)
            }
        }
    };
}

/// The trait impls of a pool type that owns its `engine`: [`Sealed`],
/// [`Pool`] and `Debug`.
macro_rules! engine_pool {
    ($pool:ident) => {
        impl $crate::api::pool::Sealed for $pool {
            fn engine(&self) -> &$crate::api::engine::Engine {
                &self.engine
            }
        }

        impl $crate::Pool for $pool {}

        impl std::fmt::Debug for $pool {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($pool))
                    .field("workers", &self.workers())
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use {engine_pool, inherent_calls};
