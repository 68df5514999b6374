//! Run closures made by factory functions in a pool of forked worker
//! processes: [pathos.multiprocessing] for Rust.
//!
//! ```
//! use forkmap::{remote, ProcessPool};
//!
//! #[remote]
//! fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
//!     move |x| x.pow(y)
//! }
//!
//! fn slow_pow(x: u64, y: u32) -> u64 {
//!     x.pow(y)
//! }
//!
//! let pool = ProcessPool::new(4)?;
//! let squares = pool.map(power_factory(2), 0..10)?;
//! let same = pool.starmap(slow_pow, (0..10).map(|x| (x, 2)))?;
//! let one = pool.apply_async(slow_pow, (3, 2)).get()?;
//! let doubled = pool.map(|x: u64| x * 2, 0..10)?;
//! assert_eq!(squares, same);
//! assert_eq!(one, 9);
//! assert_eq!(doubled[9], 18);
//! # Ok::<(), forkmap::Error>(())
//! ```
//!
//! What a pool runs is a [`Task`]: a plain function, a closure that captures
//! nothing, or the value of a factory marked [`#[remote]`](remote). A factory
//! is a function whose body ends in the closure it returns; calling it
//! returns a named struct holding its arguments, which travels to the
//! workers, where the factory body runs again to rebuild the closure once per
//! worker per call. Work before the closure (loading a table, opening a
//! connection) therefore happens once in each worker.
//!
//! # Processes and signals
//!
//! - **The processes.** A program that uses a [`ProcessPool`] has one fork
//!   server, `forkmap-server` in `ps` and `top`: a fresh run of the
//!   program's own binary, started the first time a pool needs a worker,
//!   which never runs the program's `main` or threads (see [`init`] for why,
//!   and for what workers see). Each worker, `forkmap-worker`, is forked from
//!   it. A pool's dispatcher is a thread of the program, `forkmap-dispatcher`.
//! - **Process groups.** The server, and each worker, are in a process group
//!   of their own. Signals a terminal sends to its foreground group (Ctrl-C's
//!   SIGINT, Ctrl-\'s SIGQUIT, Ctrl-Z's SIGTSTP) reach the program only: with
//!   a handler of its own, the program decides, and a call in progress runs
//!   to its end; without one, the program ends, and its server and workers
//!   follow within a moment (the server sees the program's end of its socket
//!   close, and the workers die with the server, by `PR_SET_PDEATHSIG`). A
//!   task's `kill(0, ...)` reaches its own worker's group only.
//! - **What tasks start.** A child process a task starts is in its worker's
//!   process group (unless it leaves it, with `setsid` or `setpgid`): when
//!   the worker ends (killed by a timeout, the memory limit or a
//!   cancellation, or at the pool's end), the group is killed. A worker's
//!   end is seen from the process itself (its pidfd), so a child that holds
//!   the worker's descriptors cannot hide it. Nothing of the pool's is open
//!   in a program a task runs: a worker has only standard input
//!   (`/dev/null`), output and error, and its channel, which closes on exec.
//! - **Deaths and timeouts.** A worker that dies while it runs an item costs
//!   that item only ([`Error::WorkerDied`]); one that dies between items
//!   costs the item it had just run if there was one, and otherwise runs
//!   those items again one by one, so that a second death is charged to the
//!   item that caused it. An item's timeout counts from when its chunk is
//!   handed to the worker, so a worker that is stopped, or stuck reading an
//!   item, times out too.
//! - **A forked caller.** A process the program forks (by `fork`, or a
//!   library that daemonizes) while a pool exists gets
//!   [`Error::Inherited`] from every call on that pool, at once; dropping
//!   the pool there is harmless and touches nothing of the parent's; the
//!   child makes pools of its own.
//! - **Cancelling.** Dropping an unfinished [`Imap`] or [`ImapUnordered`],
//!   or [`AsyncResult::cancel`], stops the call's items: those not started
//!   never run, and a worker stops after the item in progress (a worker
//!   process still running one 50 ms later is killed, and replaced).
//!
//! [pathos.multiprocessing]: https://pathos.readthedocs.io/

#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "forkmap runs on Linux only: it forks worker processes and relies on Linux's \
     prctl, memfd and /proc"
);

/// A [`tracing`](https://docs.rs/tracing) event with the `tracing` feature
/// (`event!(warn, parent: &span, field = value, "message")`); without it,
/// nothing at all: its arguments are not even compiled.
macro_rules! event {
    ($level:ident, $($rest:tt)*) => {{
        #[cfg(feature = "tracing")]
        ::tracing::$level!($($rest)*);
    }};
}

mod api;
mod backend;
mod call;
mod dispatch;
mod error;
#[allow(unsafe_code)] // the one module that may: see its docs
mod platform;
mod protocol;
#[cfg(test)]
mod test_rng;
mod unwind;
mod worker;

pub use api::builder::Builder;
pub use api::handle::AsyncResult;
pub use api::init::init;
#[cfg(feature = "mpi")]
#[cfg_attr(docsrs, doc(cfg(feature = "mpi")))]
pub use api::mpi_pool::MpiPool;
pub use api::pool::Pool;
pub use api::process_pool::ProcessPool;
pub use api::serial_pool::SerialPool;
pub use api::stream::{Imap, ImapUnordered};
pub use api::thread_pool::ThreadPool;
pub use api::view::Configured;
pub use error::{Error, PanicReport};
pub use platform::Death;
pub use protocol::task::{CallWith, Task};

/// The [`indicatif`](https://docs.rs/indicatif) crate forkmap draws its
/// progress bars with, for [`Pool::with_progress`]'s bar: the same version
/// as forkmap's.
#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
pub use indicatif;

/// Marks a factory function whose closure can run in worker processes.
///
/// The factory's body must end in the closure it returns, of type
/// `impl Fn(..) -> ..` or `impl FnMut(..) -> ..`; every argument must be
/// `Serialize + Deserialize`. Calling the factory returns a struct named
/// after it in UpperCamelCase (`power_factory` gives `PowerFactory`), which
/// holds the arguments and implements [`Task`]. `into_closure()` runs the
/// factory body in this process.
///
/// ```
/// use forkmap::{remote, ProcessPool};
///
/// #[remote]
/// fn scaled(factor: f64, offset: f64) -> impl Fn(f64) -> f64 {
///     move |x| x * factor + offset
/// }
///
/// let pool = ProcessPool::new(2)?;
/// assert_eq!(pool.map(scaled(2.0, 1.0), [1.0, 2.0])?, [3.0, 5.0]);
/// assert_eq!(scaled(2.0, 1.0).into_closure()(10.0), 21.0);
/// # Ok::<(), forkmap::Error>(())
/// ```
pub use forkmap_macros::remote;

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What `#[remote]` expands to refers to these; not public API.
#[doc(hidden)]
pub mod __private {
    pub use linkme;
    pub use serde;

    pub use crate::protocol::entry::{
        decode_setup, describe_remote, Described, EncodeError, RemoteEntry, StartFn, REMOTES,
    };
    pub use crate::protocol::job::{job, Job};

    /// A type that can travel between processes: `Serialize` and
    /// `DeserializeOwned`. `#[remote]` asserts it of every factory argument.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot travel to a worker process",
        label = "this type must implement `serde::Serialize` and `serde::Deserialize`",
        note = "every argument of a #[remote] factory, and every argument and result of its closure, is sent between processes",
        note = "for a type of your own, add `#[derive(serde::Serialize, serde::Deserialize)]` to its definition (serde's `derive` feature); for a handle such as a file or a connection, pass what opens it (a path, an address) and open it in the factory body"
    )]
    pub trait Wire: serde::Serialize + serde::de::DeserializeOwned {}

    impl<T: serde::Serialize + serde::de::DeserializeOwned> Wire for T {}
}
