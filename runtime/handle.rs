//! The handle of a task started with `apply_async`.

use serde::de::DeserializeOwned;

use crate::call::Results;
use crate::error::Error;

/// A task running in a pool; [`get`](AsyncResult::get) waits for its value.
///
/// The task starts as soon as the handle is made, whether or not anyone
/// waits for it. Dropping the handle does not stop a task already running in
/// a worker; its result is then thrown away.
///
/// ```
/// use forkmap::ProcessPool;
///
/// fn slow_pow(x: u64, y: u32) -> u64 {
///     x.pow(y)
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let handles: Vec<_> = (0..4).map(|x| pool.apply_async(slow_pow, (x, 2))).collect();
/// let values: Result<Vec<u64>, _> = handles.into_iter().map(|h| h.get()).collect();
/// assert_eq!(values?, [0, 1, 4, 9]);
/// # Ok::<(), forkmap::Error>(())
/// ```
#[must_use = "a task's error is only seen through `get`"]
pub struct AsyncResult<T> {
    state: Result<Results<T>, Error>,
}

impl<T: DeserializeOwned> AsyncResult<T> {
    pub(crate) fn new(state: Result<Results<T>, Error>) -> Self {
        AsyncResult { state }
    }

    /// Waits for the task and returns its value, or what went wrong.
    pub fn get(self) -> Result<T, Error> {
        let mut results = self.state?;
        results.next_with(None).unwrap_or(Err(Error::Closed))
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").finish_non_exhaustive()
    }
}
