//! [`init`]: starting the fork server at the top of `main`.

use std::sync::Once;

use crate::error::Error;
use crate::{platform, worker};

/// Starts forkmap's fork server: call it first thing in `main`, before the
/// program starts any thread. From then on every [`ProcessPool`] forks its
/// workers from the server instead of from the program.
///
/// ```
/// fn main() -> Result<(), forkmap::Error> {
///     forkmap::init()?;
///     // ... start threads, build pools ...
///     let pool = forkmap::ProcessPool::new(2)?;
///     assert_eq!(pool.map(|x: u64| x + 1, 0..3)?, [1, 2, 3]);
///     Ok(())
/// }
/// ```
///
/// # Why
///
/// A fork copies only the thread that forks. Every lock that another thread
/// of the program holds at that moment stays locked in the copy for good:
/// the lock of `stdout` while a thread prints, the lock of the environment
/// while a thread reads a variable, a lock inside a C library, a logger's.
/// A task that takes such a lock in the worker waits forever. (The allocator
/// is safe: glibc resets its locks in a forked child.) Python 3.14 stopped
/// forking by default for this reason.
///
/// The server is forked while the program has one thread and never starts
/// another, so the workers it forks hold no lock they cannot take. Without
/// it, pools fork from a thread of their own while the rest of the program
/// runs, and forkmap prints a warning the first time it does so from a
/// program with other threads.
///
/// # What workers see
///
/// A worker forked from the server is a copy of the program as it was when
/// `init` ran, not as it is when the pool starts: statics set later, files
/// opened later and changes to the environment or the working directory made
/// later are not in it. What a task needs travels with it: the arguments of a
/// [`#[remote]`](crate::remote) factory and each item's arguments.
///
/// If the server ends while the program runs (killed from outside), pools
/// notice at their next fork, say so once on stderr, and fork their workers
/// themselves from then on; a pool replaces the workers it lost with it.
///
/// # Errors
///
/// [`Error::Config`] if the program already has another thread (the server
/// would inherit the same hazard), and [`Error::Spawn`] if the server cannot
/// be forked. Either way pools still work, forked from the program. Calling
/// `init` again, or in a worker, does nothing.
///
/// [`ProcessPool`]: crate::ProcessPool
pub fn init() -> Result<(), Error> {
    if platform::in_worker() || platform::server_running() {
        return Ok(());
    }
    if platform::thread_count().map_err(Error::Spawn)? > 1 {
        return Err(Error::Config(
            "forkmap::init must run before the program starts any thread: call it first in main",
        ));
    }
    platform::start_server(worker::run).map_err(Error::Spawn)?;
    Ok(())
}

/// Warns, once per process, that workers are about to be forked from a
/// program with other threads, without the fork server.
pub(crate) fn warn_if_threaded() {
    static WARNED: Once = Once::new();
    if platform::in_worker() || platform::server_running() {
        return;
    }
    let Ok(threads) = platform::thread_count() else {
        return;
    };
    if threads > 1 {
        WARNED.call_once(|| {
            eprintln!(
                "forkmap: forking workers from a program with {threads} threads: a lock another \
                 thread holds at that moment (stdout's, the environment's, a C library's) stays \
                 locked in the worker, and a task that takes it hangs. Call forkmap::init() first \
                 in main to fork workers from a clean process instead."
            );
        });
    }
}
