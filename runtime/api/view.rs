//! A pool seen with other options for some of its calls: chunk size,
//! timeout, progress bar.

use std::time::Duration;

use crate::api::engine::{Engine, Overrides};
use crate::api::pool::{inherent_calls, Pool, Sealed};
use crate::ProcessPool;

/// A pool, for the calls made through it, with options of their own: made
/// by [`with_chunk_size`](Pool::with_chunk_size),
/// [`ProcessPool::with_timeout`] and, with the `progress` feature,
/// `with_progress`. It has every call of the pool and shares its workers;
/// the pool's own calls keep the pool's options. Its options chain.
///
/// A view rather than an argument of each call: calls keep Python's
/// signatures, and one view serves many calls and any code written over
/// [`Pool`].
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
/// let careful = pool.with_chunk_size(1).with_timeout(Duration::from_millis(500));
/// let results: Vec<_> = careful.imap(nap, [10, 60_000, 20]).collect();
/// assert_eq!(results[0].as_ref().ok(), Some(&10));
/// assert!(results[1].as_ref().unwrap_err().is_timeout());
/// assert_eq!(results[2].as_ref().ok(), Some(&20));
/// # Ok::<(), forkmap::Error>(())
/// ```
pub struct Configured<'p, P> {
    pool: &'p P,
    overrides: Overrides,
}

impl<'p, P: Pool> Configured<'p, P> {
    pub(crate) fn new(pool: &'p P) -> Self {
        Configured {
            pool,
            overrides: pool.overrides(),
        }
    }

    /// The same view, with chunks of `items` items:
    /// [`Pool::with_chunk_size`].
    pub fn with_chunk_size(mut self, items: usize) -> Self {
        self.overrides.chunk_size = Some(items);
        self
    }

    /// The same view, counting its calls' items on `bar`:
    /// [`Pool::with_progress`].
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn with_progress(mut self, bar: indicatif::ProgressBar) -> Self {
        self.overrides.progress = Some(crate::call::progress::CallersBar::new(bar));
        self
    }
}

impl Configured<'_, ProcessPool> {
    /// The same view, with a timeout for each item:
    /// [`ProcessPool::with_timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.overrides.timeout = Some(timeout);
        self
    }
}

inherent_calls!(impl['p, P: Pool] Configured<'p, P>);

impl<P: Pool> Sealed for Configured<'_, P> {
    fn engine(&self) -> &Engine {
        self.pool.engine()
    }

    fn overrides(&self) -> Overrides {
        self.overrides.clone()
    }
}

impl<P: Pool> Pool for Configured<'_, P> {}

impl<P: Pool> std::fmt::Debug for Configured<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Configured");
        debug
            .field("workers", &self.workers())
            .field("chunk_size", &self.overrides.chunk_size)
            .field("timeout", &self.overrides.timeout);
        #[cfg(feature = "progress")]
        debug.field("progress", &self.overrides.progress.is_some());
        debug.finish_non_exhaustive()
    }
}
