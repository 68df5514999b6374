//! The handle of a call started with `apply_async`, `map_async` or
//! `starmap_async`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::call::Results;
use crate::dispatch::work::WakerSlot;
use crate::error::Error;

/// A call running in a pool; [`get`](AsyncResult::get) waits for its value,
/// and `.await` does the same in async code, under any runtime.
///
/// The call starts as soon as the handle is made, whether or not anyone
/// waits for it. Dropping the handle does not cancel the call: its tasks
/// still run (a pool's `join` waits for them), and their results are thrown
/// away; [`cancel`](AsyncResult::cancel) stops them.
///
/// Like [`std::thread::JoinHandle`], it can be looked at from a shared
/// reference: [`is_ready`](AsyncResult::is_ready) and
/// [`wait_timeout`](AsyncResult::wait_timeout) take `&self`, and a handle is
/// `Send` and `Sync`, so one thread may wait on it while another polls it.
///
/// ```
/// use forkmap::ProcessPool;
/// use std::time::Duration;
///
/// fn slow_pow(x: u64, y: u32) -> u64 {
///     x.pow(y)
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let handle = pool.apply_async(slow_pow, (3, 2));
/// assert!(handle.wait_timeout(Duration::from_secs(10)));
/// assert!(handle.is_ready());
/// assert_eq!(handle.get()?, 9);
///
/// let handles: Vec<_> = (0..4).map(|x| pool.apply_async(slow_pow, (x, 2))).collect();
/// let values: Result<Vec<u64>, _> = handles.into_iter().map(|h| h.get()).collect();
/// assert_eq!(values?, [0, 1, 4, 9]);
/// # Ok::<(), forkmap::Error>(())
/// ```
#[must_use = "a call's errors are only seen through its handle"]
pub struct AsyncResult<T> {
    /// The call's results, or why it could not start; `None` once a future
    /// has returned it. Locked only to take in replies that have come,
    /// never while waiting for one.
    state: Mutex<Option<Result<Results, Error>>>,
    finish: fn(Results) -> Result<T, Error>,
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(
        state: Result<Results, Error>,
        finish: fn(Results) -> Result<T, Error>,
    ) -> Self {
        AsyncResult {
            state: Mutex::new(Some(state)),
            finish,
        }
    }

    /// Waits for the call and returns its value, or what went wrong.
    pub fn get(mut self) -> Result<T, Error> {
        self.take()
    }

    /// Waits at most `timeout` for the call to finish; true once it has.
    /// Several threads may wait on one handle, each for its own time.
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
    /// let pool = ProcessPool::new(1)?;
    /// let handle = pool.apply_async(nap, (300,));
    /// assert!(!handle.wait_timeout(Duration::from_millis(10)));
    /// assert!(handle.wait_timeout(Duration::from_secs(10)));
    /// assert_eq!(handle.get()?, 300);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let Some(results) = self.results_slot() else {
                return true;
            };
            // Counted before looking, so that a reply landing in between
            // cuts the sleep short.
            let seen = results.count();
            if self.pump() {
                return true;
            }
            let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if !results.sleep(seen, deadline) {
                return self.pump();
            }
        }
    }

    /// Cancels the call, and gives its workers back to the pool: its items
    /// not yet started never run, and those a worker runs stop after the
    /// item in progress (a worker process still running an item 50 ms
    /// later is killed, and replaced). Dropping a handle does not cancel,
    /// as dropping a [`JoinHandle`](std::thread::JoinHandle) does not.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    /// use std::time::{Duration, Instant};
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let slow = pool.map_async(nap, [60_000u64; 8]);
    /// let started = Instant::now();
    /// slow.cancel();
    /// // The workers are free at once for the next call.
    /// assert_eq!(pool.map(nap, [1, 2])?, [1, 2]);
    /// assert!(started.elapsed() < Duration::from_secs(10));
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn cancel(mut self) {
        if let Some(Ok(results)) = self.state_mut().take() {
            results.cancel();
        }
    }

    /// Whether the call has finished, so that [`get`](AsyncResult::get)
    /// returns at once. It never blocks.
    ///
    /// ```
    /// use forkmap::ProcessPool;
    /// use std::time::Duration;
    ///
    /// let pool = ProcessPool::new(1)?;
    /// let handle = pool.apply_async(|x: u64| x + 1, (1,));
    /// std::thread::scope(|s| {
    ///     // One thread waits, another looks: both from `&handle`.
    ///     s.spawn(|| assert!(handle.wait_timeout(Duration::from_secs(10))));
    ///     s.spawn(|| while !handle.is_ready() {
    ///         std::thread::sleep(Duration::from_millis(1));
    ///     });
    /// });
    /// assert_eq!(handle.get()?, 2);
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.pump()
    }

    fn state(&self) -> MutexGuard<'_, Option<Result<Results, Error>>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&mut self) -> &mut Option<Result<Results, Error>> {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where replies to the call are announced, unless it is over.
    fn results_slot(&self) -> Option<Arc<WakerSlot>> {
        match &*self.state() {
            Some(Ok(results)) => Some(Arc::clone(results.waker())),
            _ => None,
        }
    }

    /// Takes in the replies that have come; true once every one is in.
    fn pump(&self) -> bool {
        match &mut *self.state() {
            Some(Ok(results)) => results.pump(),
            _ => true,
        }
    }

    fn take(&mut self) -> Result<T, Error> {
        match self.state_mut().take() {
            Some(Ok(results)) => (self.finish)(results),
            Some(Err(error)) => Err(error),
            // Only a future polled again after it returned gets here.
            None => Err(Error::Closed),
        }
    }
}

/// `handle.await` waits without blocking a thread: the pool wakes the task
/// when each reply comes in.
impl<T> Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(Ok(results)) = this.state_mut() {
            // Leave the waker before looking, so that a reply landing in
            // between still wakes the task.
            results.waker().set(cx.waker());
            if !results.pump() {
                return Poll::Pending;
            }
        }
        Poll::Ready(this.take())
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").finish_non_exhaustive()
    }
}
