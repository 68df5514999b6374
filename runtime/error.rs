//! The one public error type, and the reports that cross the process boundary.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::platform::Death;

/// Everything that can go wrong when a pool runs a task.
///
/// A failure of one item never poisons the pool: after any of these errors the
/// same pool serves the next call.
///
/// ```
/// use forkmap::{Error, ProcessPool};
///
/// fn checked(x: u64) -> u64 {
///     assert!(x != 3, "three is not allowed");
///     x
/// }
///
/// let pool = ProcessPool::new(2)?;
/// let err = pool.map(checked, 0..5u64).unwrap_err();
/// // `map` says how many items failed, and gives the first failure.
/// assert!(matches!(err, Error::Incomplete { completed: 4, failed: 1, .. }));
/// assert!(err.is_panic());
/// assert_eq!(err.index(), Some(3));
/// assert!(err.to_string().contains("three is not allowed"));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked; the worker caught the panic and lives on.
    #[error("item {index} of `{function}` panicked at {panic}")]
    Panic {
        /// The function the pool was running.
        function: String,
        /// The item's position in the input.
        index: usize,
        /// The panic's message and location.
        panic: PanicReport,
    },
    /// The worker process running the item died (signal, `exit`, abort).
    #[error("the worker running item {index} of `{function}` {death}")]
    WorkerDied {
        /// The function the pool was running.
        function: String,
        /// The item's position in the input.
        index: usize,
        /// How the worker ended.
        death: Death,
    },
    /// The item ran longer than the pool allows; its worker was killed and
    /// replaced.
    #[error("item {index} of `{function}` ran past its timeout of {timeout:?}, so its worker was killed")]
    Timeout {
        /// The function the pool was running.
        function: String,
        /// The item's position in the input.
        index: usize,
        /// The pool's timeout.
        timeout: std::time::Duration,
    },
    /// The item's worker grew past the memory the pool allows each worker;
    /// it was killed and replaced.
    #[error("item {index} of `{function}` took its worker past the memory limit of {limit} bytes, so the worker was killed")]
    OutOfMemory {
        /// The function the pool was running.
        function: String,
        /// The item's position in the input.
        index: usize,
        /// The pool's limit: how many bytes a worker's resident memory may
        /// grow by.
        limit: u64,
    },
    /// Some items of a `map`, `starmap` or their async forms failed. Every
    /// other item ran, and its value is dropped with the other errors: to
    /// get every item's own result, call
    /// [`map_results`](crate::Pool::map_results) (or
    /// [`starmap_results`](crate::Pool::starmap_results)) instead, or read
    /// [`imap`](crate::Pool::imap). The helpers ([`index`](Error::index),
    /// [`is_panic`](Error::is_panic), …) look at the first failure.
    ///
    /// ```
    /// use forkmap::{Error, ProcessPool};
    ///
    /// fn checked(x: u64) -> u64 {
    ///     assert!(x != 3, "three is not allowed");
    ///     x
    /// }
    ///
    /// let pool = ProcessPool::new(2)?;
    /// let err = pool.map(checked, 0..5u64).unwrap_err();
    /// assert!(err.to_string().contains("map_results"));
    /// let each = pool.map_results(checked, 0..5u64)?;
    /// assert_eq!(each.iter().filter(|r| r.is_ok()).count(), 4);
    /// # Ok::<(), Error>(())
    /// ```
    #[error("{failed} of {} items failed (map_results gives every item's own result); the first: {first}", completed + failed)]
    Incomplete {
        /// How many items gave a value.
        completed: usize,
        /// How many items failed.
        failed: usize,
        /// The failure of the first item that failed, in input order.
        #[source]
        first: Box<Error>,
    },
    /// A worker could not make the closure: the factory body panicked, or the
    /// function or its arguments did not check out in the worker.
    #[error("a worker could not set up `{function}` for item {index}: {reason}")]
    Setup {
        /// The function the pool was running.
        function: String,
        /// The item that could not run.
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// An argument, a factory's captured values or a result could not be
    /// encoded or decoded; or the worker's link to the pool broke while it
    /// ran the item (a reply that does not check out, a link that a task
    /// closed), and the worker was ended.
    #[error("could not {what} for `{function}`: {reason}")]
    Codec {
        /// The function the pool was running.
        function: String,
        /// The position in the input of the item whose data it was, if an
        /// item's (not the factory's or the initializer's).
        index: Option<usize>,
        /// What was being encoded or decoded, with the item's index if any.
        what: String,
        /// The codec's message.
        reason: String,
    },
    /// A worker process could not be started.
    #[error("could not start a worker process: {0}")]
    Spawn(#[source] std::io::Error),
    /// The pool was configured with a value it cannot use.
    #[error("invalid pool configuration: {0}")]
    Config(&'static str),
    /// The pool shut down before the task finished.
    #[error("the pool shut down before the task finished")]
    Closed,
    /// The pool belongs to another process: this one was forked from the
    /// process that made it (by the program's own `fork`, or a library that
    /// daemonizes), and cannot use it. Dropping it here is harmless; a
    /// process makes pools of its own.
    #[error("the pool belongs to process {owner}, which this process was forked from: build a pool of its own")]
    Inherited {
        /// The process that made the pool.
        owner: u32,
    },
}

impl Error {
    /// The error of one item: for [`Error::Incomplete`], its first failure;
    /// any other error is its own.
    pub fn item_error(&self) -> &Error {
        match self {
            Error::Incomplete { first, .. } => first.item_error(),
            other => other,
        }
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.item_error(), Error::Panic { .. })
    }

    /// True if the worker process running the task died.
    pub fn is_worker_death(&self) -> bool {
        matches!(self.item_error(), Error::WorkerDied { .. })
    }

    /// True if the task ran past the pool's timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.item_error(), Error::Timeout { .. })
    }

    /// True if the task went past the pool's memory limit.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self.item_error(), Error::OutOfMemory { .. })
    }

    /// The position in the input of the item that failed, when one item did.
    pub fn index(&self) -> Option<usize> {
        match self.item_error() {
            Error::Panic { index, .. }
            | Error::WorkerDied { index, .. }
            | Error::Timeout { index, .. }
            | Error::OutOfMemory { index, .. }
            | Error::Setup { index, .. } => Some(*index),
            Error::Codec { index, .. } => *index,
            _ => None,
        }
    }

    /// The name of the function the pool was running, when the error is about one.
    pub fn function(&self) -> Option<&str> {
        match self.item_error() {
            Error::Panic { function, .. }
            | Error::WorkerDied { function, .. }
            | Error::Timeout { function, .. }
            | Error::OutOfMemory { function, .. }
            | Error::Setup { function, .. }
            | Error::Codec { function, .. } => Some(function),
            _ => None,
        }
    }
}

/// A panic caught in a worker: its message and where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PanicReport {
    /// The panic's message (`"Box<dyn Any>"` when the payload was not a string).
    pub message: String,
    /// The source location, `file:line:column`, when the panic had one.
    pub location: Option<String>,
    /// The worker's backtrace at the panic, captured only when the program
    /// asks for backtraces (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` set, as
    /// [`std::backtrace::Backtrace::capture`] reads them); `None` otherwise,
    /// at no cost. `{:?}` of the error prints it.
    pub backtrace: Option<String>,
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
