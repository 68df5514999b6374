//! Run closures made by factory functions in a pool of forked worker
//! processes: [pathos.multiprocessing] for Rust. A task that panics,
//! crashes, leaks or hangs costs its own item, never the program or the
//! other items; each worker can hold state that cannot be shared or sent.
//!
//! ```
//! use forkmap::{remote, ProcessPool};
//!
//! #[remote] // the factory runs again in each worker to rebuild the closure
//! fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
//!     move |x| x.pow(y)
//! }
//!
//! let pool = ProcessPool::new(4)?;                     // four worker processes
//! let squares = pool.map(power_factory(2), 0..10)?;   // results in input order
//! assert_eq!(squares[9], 81);
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
//! # When to use it instead of rayon
//!
//! [rayon](https://docs.rs/rayon) is the right tool for thread-safe work on
//! data in memory: it shares memory and costs nothing per item. Use forkmap
//! where threads cannot do the job:
//!
//! - a task may crash: an FFI library that segfaults or aborts, a stack
//!   overflow, `std::process::exit`. A worker's death fails its item with
//!   [`Error::WorkerDied`], and the worker is replaced;
//! - a task must be stopped: a timeout or a memory limit kills its worker
//!   ([`Builder::timeout`], [`Builder::memory_limit`]), which no thread can
//!   be made to do;
//! - the code is not thread-safe (`Rc`, globals, a C library), or each
//!   worker needs state of its own (a connection, a model) built once in
//!   the factory or the pool's [`initializer`](Builder::initializer);
//! - the same program should run unchanged on the ranks of an MPI job
//!   (feature `mpi`).
//!
//! Items and results are encoded with serde on their way to and from the
//! workers: for CPU-bound work on items of a few bytes, forkmap stays within
//! a few percent of rayon; for large values, the copying shows.
//!
//! # The pools
//!
//! Every pool has the calls of Python's `multiprocessing.Pool` through one
//! trait, [`Pool`]: `map`, `starmap`, `imap` (lazy, in order),
//! `imap_unordered`, `map_async`, `starmap_async`, `apply`, `apply_async`,
//! `close`, `join`, `terminate`, and `map_results`/`starmap_results`
//! (every item's own result).
//!
//! | pool | workers | for |
//! |---|---|---|
//! | [`ProcessPool`] | forked processes | crash isolation, timeouts, memory limits, code that is not thread-safe |
//! | [`ThreadPool`] | threads of this process | comparing, or where forking is not wanted |
//! | [`SerialPool`] | the caller itself | debugging: a debugger and `println!` see the task |
//! | `MpiPool` (feature `mpi`) | processes on the other ranks of an MPI job | the same program on a cluster |
//!
//! A [`Configured`] view sets one call's options, and chains:
//! `pool.with_chunk_size(1)`, `pool.with_timeout(d)` (processes), and
//! `pool.with_progress(bar)` (feature `progress`). A handle
//! ([`AsyncResult`]) is `Send + Sync`, waited on from `&self`, and a
//! future.
//!
//! # Errors
//!
//! One error type, [`Error`]. A task's failure is its own item's error and
//! says which item (its index) and which function: a panic
//! ([`Error::Panic`], with its message and location), a death
//! ([`Error::WorkerDied`], with the exit code or signal), a timeout, a memory
//! limit, a value that does not encode or decode ([`Error::Codec`]). `map`
//! returns [`Error::Incomplete`] (how many items failed, and the first
//! failure) after every other item has run; `map_results` and `imap` give
//! each item's own result. The pool serves the next call either way.
//!
//! ```
//! use forkmap::ProcessPool;
//!
//! fn checked(x: u64) -> u64 {
//!     assert!(x != 3, "three is not allowed");
//!     x
//! }
//!
//! let pool = ProcessPool::new(2)?;
//! let err = pool.map(checked, 0..5).unwrap_err();
//! assert_eq!((err.index(), err.is_panic()), (Some(3), true));
//! let each = pool.map_results(checked, 0..5)?;
//! assert_eq!(each.iter().filter(|r| r.is_ok()).count(), 4);
//! # Ok::<(), forkmap::Error>(())
//! ```
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
//!   close, kills the workers it has not reaped, and ends; the workers also
//!   die with the server, by `PR_SET_PDEATHSIG`). A task's `kill(0, ...)`
//!   reaches its own worker's group only. The server ignores the signals
//!   that would end or stop it (a task may send its worker's parent SIGTERM
//!   or SIGUSR1 thinking it its program), and its workers take back the
//!   program's actions (what the program ignores, they ignore). A server
//!   slow to answer is sent SIGCONT (a task may have stopped it), and one
//!   that has not answered for 10 s is killed, with its workers, and
//!   replaced. It takes SIGCHLD's default action even where the program
//!   ignores SIGCHLD, so how workers end is known.
//! - **What tasks start.** A child process a task starts is in its worker's
//!   process group (unless it leaves it, with `setsid` or `setpgid`): when
//!   the worker ends (killed by a timeout, the memory limit or a
//!   cancellation, or at the pool's end), the group is killed. A worker's
//!   end is seen from the process itself (its pidfd), so a child that holds
//!   the worker's descriptors cannot hide it. Nothing of the pool's is open
//!   in a program a task runs: a worker has only standard input
//!   (`/dev/null`), output and error, and its link to the pool (a socket and
//!   a pipe, which close on exec, and its two rings, which exec unmaps). A
//!   task that closes one of these, or puts another file in its place,
//!   costs at most its own item; a worker whose bell (the pipe) is gone is
//!   replaced once it holds no work.
//! - **How data moves.** Each worker has two rings in shared memory (one
//!   each way; [`Builder::ring_size`], 1 MiB each by default): a chunk of
//!   items, or a batch of results, is one message, and no system call is
//!   made while both sides are busy. A side with nothing to do spins a
//!   moment, giving way to other threads, then sleeps (a worker on a futex
//!   in its ring, the pool's dispatcher in `poll`), and is woken only when it
//!   sleeps: an idle pool uses no CPU. A frame larger than half a ring goes
//!   through a socket, in order with the rest. The pool checks everything
//!   it reads from a ring: a task that scribbles over its worker's rings
//!   costs at most its own item.
//! - **Deaths and timeouts.** A worker that dies while it runs an item costs
//!   that item only ([`Error::WorkerDied`]); one that dies between items
//!   costs the item it had just run if there was one (if the worker had
//!   replied before, that item first runs once more, alone: an item
//!   replied to may have broken the worker), and otherwise runs those items
//!   again one by one, so that a second death is charged to the item that
//!   caused it. So do the items of a worker that died with its board
//!   spoiled, which says nothing, and those of a worker that lived on after
//!   its link to the pool closed (a task closed one of its descriptors),
//!   which the pool ends. An item's timeout counts from
//!   when its chunk is handed to the worker, so a worker that is stopped,
//!   or stuck reading an item, times out too.
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
//! # Features
//!
//! None is on by default; without them, nothing of their crates is built.
//!
//! - **`progress`** (on [indicatif](https://docs.rs/indicatif)): progress
//!   bars on stderr, hidden when it is not a terminal.
//!   [`Builder::progress`] gives each long call of a pool a bar of its own
//!   (done of total, rate, time left, failures apart);
//!   [`Pool::with_progress`] counts calls on a bar of the caller's; `imap`
//!   works with `indicatif::ProgressIterator` as it is.
//!   `examples/progress.rs`.
//! - **`tracing`** (on [tracing](https://docs.rs/tracing)): a span per call
//!   named `call`, with the function, the number of items, the chunk size
//!   and the kind of pool; events for each worker's start and end
//!   (`debug`), death with its cause, timeout and memory-limit kills
//!   (`warn`), replacement (`info`), and each chunk (`trace`). The
//!   dispatcher's events are in the span of the call they concern.
//!   `examples/tracing.rs` prints them with `tracing-subscriber`.
//! - **`mpi`** (on [rsmpi](https://docs.rs/mpi), over the system's MPI,
//!   such as Debian's `libopenmpi-dev`): `MpiPool`, whose workers are
//!   processes on the other ranks of an MPI job, each rank serving through a
//!   pool of its own; [`init`] is required there, first in `main`. It is not
//!   in these docs when they are built without a system MPI (docs.rs): see
//!   the README's "On a cluster".
//!
//! # Coming from Python
//!
//! The README's table maps every call of `multiprocessing.Pool` and pathos.
//! What differs:
//!
//! - **`chunksize`** is one call's option in Python: here
//!   `pool.with_chunk_size(n).map(f, xs)`, or the pool's
//!   [`Builder::chunk_size`]. By default the size adapts.
//! - **Several iterables** (pathos' `map(f, xs, ys)`): `starmap` over their
//!   `zip`, `pool.starmap(f, xs.into_iter().zip(ys))`.
//! - **`callback` and `error_callback`** of `apply_async` and `map_async`:
//!   Rust has the results as values instead. `imap_unordered` hands each
//!   result over as soon as it is in, so `for r in pool.imap_unordered(f, xs)
//!   { match r { Ok((i, v)) => on_value(i, v), Err(e) => on_error(e) } }` is
//!   both callbacks, run in the caller's thread; a handle is a future
//!   (`handle.await`), or can be waited on from another thread.
//! - **`restart()`** (pathos): a terminated pool stays closed, so a call in
//!   progress that sees [`Error::Closed`] knows it is final; make a new pool
//!   instead (`ProcessPool::new(n)?` forks its workers from the fork server
//!   in a few milliseconds). pathos needs `restart` because it keeps its
//!   pools in a global cache; forkmap's pool is an ordinary value.
//!
//! ```
//! use forkmap::ProcessPool;
//!
//! fn add(x: u64, y: u64) -> u64 {
//!     x + y
//! }
//!
//! let (xs, ys) = (vec![1, 2, 3], vec![10, 20, 30]);
//! let mut pool = ProcessPool::new(2)?;
//! assert_eq!(pool.starmap(add, xs.into_iter().zip(ys))?, [11, 22, 33]);
//! let mut seen = Vec::new();
//! for result in pool.with_chunk_size(1).imap_unordered(|x: u64| x * 2, 0..4) {
//!     match result {
//!         Ok((index, value)) => seen.push((index, value)), // callback
//!         Err(error) => eprintln!("item {:?}: {error}", error.index()), // error_callback
//!     }
//! }
//! seen.sort();
//! assert_eq!(seen, [(0, 0), (1, 2), (2, 4), (3, 6)]);
//! pool.terminate();
//! pool = ProcessPool::new(2)?; // pathos' restart()
//! assert_eq!(pool.apply(add, (1, 2))?, 3);
//! # Ok::<(), forkmap::Error>(())
//! ```
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
pub use protocol::task::{CallWith, Task, Travel};

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
    pub use crate::protocol::task::{CapturesNothing, Travel};
}
