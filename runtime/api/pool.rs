//! The [`Pool`] trait: the calls every pool offers, whatever runs them.

use crate::api::engine::{Engine, Overrides};
use crate::api::handle::AsyncResult;
use crate::api::stream::{Imap, ImapUnordered};
use crate::api::view::Configured;
use crate::error::Error;
use crate::protocol::task::Task;

/// Keeps [`Pool`] to the pools of this crate, so that methods can be added
/// to it without breaking anyone.
mod sealed {
    /// Gives the trait's provided methods the pool's engine.
    pub trait Sealed {
        fn engine(&self) -> &super::Engine;

        /// What the calls made through this pool change of the pool's
        /// options: nothing, but for a [`Configured`](crate::Configured)
        /// pool.
        fn overrides(&self) -> super::Overrides {
            super::Overrides::default()
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

    /// This pool, for the calls made through the value returned, with
    /// chunks of `items` items: Python's `chunksize` argument of `map`.
    /// Calls through it share the pool's workers; its other options chain
    /// (`pool.with_chunk_size(1).with_progress(bar)`). Zero items make
    /// every call fail with [`Error::Config`].
    ///
    /// Small chunks spread slow, uneven items over the workers; large ones
    /// pay for fewer messages when items are quick. By default the size
    /// adapts ([`Builder::chunk_size`](crate::Builder::chunk_size)).
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let one_by_one = pool.with_chunk_size(1);
    /// assert_eq!(one_by_one.map(|x: u64| x + 1, 0..4)?, [1, 2, 3, 4]);
    /// assert_eq!(one_by_one.workers(), 2);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn with_chunk_size(&self, items: usize) -> Configured<'_, Self>
    where
        Self: Sized,
    {
        Configured::new(self).with_chunk_size(items)
    }

    /// This pool, for the calls made through the value returned, counting
    /// their items on `bar`, an [`indicatif`] progress bar that the caller
    /// owns and styles: each result that comes back moves it by one, and
    /// once an item has failed its message says how many of the items of
    /// the calls made through the view did (`"2 failed"`). A bar with no
    /// length is given one: the total of its calls' lengths, where the
    /// inputs' lengths are known.
    /// Finishing the bar is the caller's.
    ///
    /// ```
    /// use forkmap::indicatif::{ProgressBar, ProgressDrawTarget};
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn checked(x: u64) -> u64 {
    ///     assert!(x != 7, "seven");
    ///     x
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// // A hidden bar here; `ProgressBar::new(100)` draws on stderr.
    /// let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::hidden());
    /// let results = pool.with_progress(bar.clone()).map_results(checked, 0..100)?;
    /// bar.finish();
    /// assert_eq!((bar.position(), bar.message()), (100, "1 failed".to_string()));
    /// assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    ///
    /// `imap`'s iterator also works with
    /// [`indicatif::ProgressIterator`] as it is, which counts the results as
    /// they are read rather than as they come back:
    ///
    /// ```
    /// use forkmap::indicatif::ProgressIterator;
    /// use forkmap::ProcessPool;
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let squares: Vec<u64> = pool
    ///     .imap(|x: u64| x * x, 0..100)
    ///     .progress_count(100)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(squares[9], 81);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    fn with_progress(&self, bar: indicatif::ProgressBar) -> Configured<'_, Self>
    where
        Self: Sized,
    {
        Configured::new(self).with_progress(bar)
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

    /// Calls `f` on every item, as [`map`](Pool::map) does, and returns
    /// every item's own result in input order: the values of the items that
    /// succeeded and the errors of those that failed, where `map` keeps only
    /// the first error ([`Error::Incomplete`]).
    ///
    /// The outer `Err` is for the call as a whole: the pool was closed or
    /// terminated ([`Error::Closed`]), or no worker could start
    /// ([`Error::Spawn`]).
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn checked(x: u64) -> u64 {
    ///     assert!(x % 3 != 0, "{x} is a multiple of three");
    ///     x
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let results = pool.map_results(checked, 1..=6)?;
    /// let values: Vec<u64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    /// assert_eq!(values, [1, 2, 4, 5]);
    /// let failed: Vec<usize> = results.iter().filter_map(|r| r.as_ref().err()?.index()).collect();
    /// assert_eq!(failed, [2, 5]);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn map_results<F, A, I>(&self, f: F, items: I) -> Result<Vec<Result<F::Output, Error>>, Error>
    where
        F: Task<(A,)>,
        I: IntoIterator<Item = A>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap_results(self, f, items.into_iter().map(|item| (item,)))
    }

    /// Calls `f` on every tuple of arguments, as [`starmap`](Pool::starmap)
    /// does, and returns every item's own result in input order, as
    /// [`map_results`](Pool::map_results) does.
    ///
    /// ```
    /// use forkmap::{Pool, ProcessPool};
    ///
    /// fn divide(a: u64, b: u64) -> u64 {
    ///     a / b
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let results = pool.starmap_results(divide, [(6, 3), (1, 0), (8, 2)])?;
    /// assert_eq!(results[0].as_ref().ok(), Some(&2));
    /// assert!(results[1].as_ref().unwrap_err().is_panic());
    /// assert_eq!(results[2].as_ref().ok(), Some(&4));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    fn starmap_results<F, Args, I>(
        &self,
        f: F,
        items: I,
    ) -> Result<Vec<Result<F::Output, Error>>, Error>
    where
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        let () = F::__CAPTURES_NOTHING;
        run::starmap_results(self, f, items)
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
    use crate::api::engine::Shape;
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
            .start_call(&f, items.into_iter(), pool.overrides(), Shape::Many)?
            .collect()
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn starmap_results<P, F, Args, I>(
        pool: &P,
        f: F,
        items: I,
    ) -> Result<Vec<Result<F::Output, Error>>, Error>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
        I: IntoIterator<Item = Args>,
    {
        pool.engine()
            .start_call(&f, items.into_iter(), pool.overrides(), Shape::Many)?
            .collect_each()
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
                .start_call(&f, items.into_iter(), pool.overrides(), Shape::Many),
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
        ImapUnordered::new(pool.engine().start_call(
            &f,
            items.into_iter(),
            pool.overrides(),
            Shape::Many,
        ))
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
        let started =
            pool.engine()
                .start_call(&f, items.into_iter(), pool.overrides(), Shape::Many);
        AsyncResult::new(started.map(|r| r.into_sent()), Results::collect)
    }

    pub(crate) fn apply_async<P, F, Args>(pool: &P, f: F, args: Args) -> AsyncResult<F::Output>
    where
        P: Sealed + ?Sized,
        F: Task<Args>,
    {
        let started =
            pool.engine()
                .start_call(&f, std::iter::once(args), pool.overrides(), Shape::One);
        AsyncResult::new(started.map(|r| r.into_sent()), Results::single)
    }
}

/// Gives a pool type the calls of [`Pool`] as inherent methods, so that
/// users need not import the trait.
macro_rules! inherent_calls {
    ($pool:ty) => {
        inherent_calls!(impl[] $pool);
    };
    (impl[$($generics:tt)*] $pool:ty) => {
        impl<$($generics)*> $pool {
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

            /// Every item's own result, in input order:
            /// [`Pool::map_results`](crate::Pool::map_results).
            #[allow(clippy::type_complexity)]
            pub fn map_results<F, A, I>(
                &self,
                f: F,
                items: I,
            ) -> Result<Vec<Result<F::Output, $crate::Error>>, $crate::Error>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap_results(self, f, items.into_iter().map(|item| (item,)))
            }

            /// Every tuple's own result, in input order:
            /// [`Pool::starmap_results`](crate::Pool::starmap_results).
            #[allow(clippy::type_complexity)]
            pub fn starmap_results<F, Args, I>(
                &self,
                f: F,
                items: I,
            ) -> Result<Vec<Result<F::Output, $crate::Error>>, $crate::Error>
            where
                F: $crate::Task<Args>,
                I: IntoIterator<Item = Args>,
            {
                let () = <F as $crate::Task<Args>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap_results(self, f, items)
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
                $crate::api::pool::run::imap_unordered(self, f, items.into_iter().map(|item| (item,)))
            }

            /// Starts a `map` and returns a handle: [`Pool::map_async`](crate::Pool::map_async).
            pub fn map_async<F, A, I>(&self, f: F, items: I) -> $crate::AsyncResult<Vec<F::Output>>
            where
                F: $crate::Task<(A,)>,
                I: IntoIterator<Item = A>,
            {
                let () = <F as $crate::Task<(A,)>>::__CAPTURES_NOTHING;
                $crate::api::pool::run::starmap_async(self, f, items.into_iter().map(|item| (item,)))
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

        impl $pool {
            /// This pool with chunks of `items` items for the calls made
            /// through the value returned:
            /// [`Pool::with_chunk_size`](crate::Pool::with_chunk_size).
            pub fn with_chunk_size(&self, items: usize) -> $crate::Configured<'_, $pool> {
                $crate::Pool::with_chunk_size(self, items)
            }

            /// This pool, counting the items of the calls made through the
            /// value returned on `bar`:
            /// [`Pool::with_progress`](crate::Pool::with_progress).
            #[cfg(feature = "progress")]
            #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
            pub fn with_progress(
                &self,
                bar: $crate::indicatif::ProgressBar,
            ) -> $crate::Configured<'_, $pool> {
                $crate::Pool::with_progress(self, bar)
            }
        }

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
