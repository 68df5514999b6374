//! [`init`]: starting the fork server early.

use crate::error::Error;
use crate::platform;

/// Starts forkmap's fork server now, rather than when the first
/// [`ProcessPool`] needs a worker. Calling it is never required: it is safe
/// to call from any thread, at any time, any number of times.
///
/// ```
/// fn main() -> Result<(), forkmap::Error> {
///     forkmap::init()?; // optional: starts the fork server now
///     let pool = forkmap::ProcessPool::new(2)?;
///     assert_eq!(pool.map(|x: u64| x + 1, 0..3)?, [1, 2, 3]);
///     Ok(())
/// }
/// ```
///
/// # The fork server
///
/// A fork copies only the thread that forks. Every lock that another thread
/// of a program holds at that moment stays locked in the copy for good: the
/// lock of `stdout` while a thread prints, a `OnceLock` being initialised, a
/// logger's, a lock inside a C library. A task that takes such a lock in a
/// worker would wait forever. (Python 3.14 stopped forking by default for
/// this reason.) So forkmap never forks workers from the program: the first
/// time a pool needs a worker, it runs the program's own binary again
/// (`/proc/self/exe`) as a fork server, which forks every worker from then
/// on. The server never runs the program's `main` or any of its threads:
/// a function forkmap places before `main` recognises it and serves forks
/// instead, so the workers it forks hold no lock they cannot take, under
/// `#[tokio::main]`, in a `#[test]`, or in a library that does not own
/// `main`.
///
/// Call `init` anyway to pay the server's start-up (a few milliseconds)
/// before the first pool rather than in it.
///
/// # What workers see
///
/// A worker is a copy of the program as it is when it starts, before
/// `main`: statics hold their initial values, and nothing that `main` or
/// any thread did is there (a logger set up in `main`, a global set at run
/// time, files opened since). Environment variables are those the program
/// had when the server started. What a task needs travels with it: the
/// arguments of a [`#[remote]`](crate::remote) factory, each item's
/// arguments, and a pool's [`initializer`](crate::Builder::initializer),
/// which runs once in each worker.
///
/// If the server dies (killed from outside), the next pool that needs a
/// worker starts a new one; the workers of the old one died with it, and
/// their pools replace them.
///
/// # On a cluster
///
/// With the `mpi` feature, in a program started by `mpirun` (or `mpiexec`,
/// `srun`), `init` also starts MPI, and on every rank but 0 it never
/// returns: the rank serves the job's `MpiPool` until rank 0's `main`
/// returns. There it is required, first in `main`.
///
/// # Errors
///
/// [`Error::Spawn`] if no server can be started here (no `/proc`, a binary
/// that cannot be run again, a seccomp policy). Pools still work: they then
/// fork their workers from the program, and say so once on stderr, with
/// the hazard above; set the environment variable `FORKMAP_QUIET=1` to
/// silence that warning.
///
/// [`ProcessPool`]: crate::ProcessPool
pub fn init() -> Result<(), Error> {
    // The server first: an MPI library may not like its process forking
    // once it has started.
    let server = platform::start_server().map_err(Error::Spawn);
    #[cfg(feature = "mpi")]
    {
        use crate::backend::mpi::environment;
        let place = environment::start().map_err(|e| Error::Spawn(std::io::Error::other(e)))?;
        if place.is_some_and(|place| place.rank != 0) {
            crate::api::rank::serve();
        }
    }
    server
}
