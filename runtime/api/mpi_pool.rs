//! The pool of worker processes on the other ranks of an MPI job.

use std::time::{Duration, Instant};

use crate::api::builder::Builder;
use crate::api::engine::Engine;
use crate::api::pool::{engine_pool, inherent_calls};
use crate::backend::mpi::environment;
use crate::backend::mpi::{receive_until, send_control, RemoteRank, CONTROL};
use crate::dispatch::scheduler::WorkerOptions;
use crate::error::Error;
use crate::platform::code;
use crate::protocol::codec;
use crate::protocol::entry;
use crate::protocol::message::{FromRank, ToRank};

/// How long a rank may take to start its pool and answer.
const START_WITHIN: Duration = Duration::from_secs(60);

/// A pool whose workers are processes on the other ranks of an MPI job: the
/// same program on a cluster. Its calls are those of the [`Pool`](crate::Pool)
/// trait, and it keeps the promise of a [`ProcessPool`](crate::ProcessPool):
/// a task that panics, aborts, segfaults or times out on a rank costs one
/// item, and the rank lives on.
///
/// Every rank runs the same binary (`mpirun -n 4 target/release/prog`);
/// [`forkmap::init()`](crate::init), first in `main`, starts MPI, and on every
/// rank but 0 it never returns: the rank serves the pool, through a pool of
/// worker processes of its own. Rank 0 returns to `main` and makes the
/// `MpiPool`.
///
/// ```no_run
/// use forkmap::{remote, MpiPool};
///
/// #[remote]
/// fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
///     move |x| x.pow(y)
/// }
///
/// fn main() -> Result<(), forkmap::Error> {
///     forkmap::init()?; // on ranks other than 0, it never returns
///     let pool = MpiPool::new()?;
///     println!("{:?}", pool.map(power_factory(2), 0..10)?);
///     Ok(())
/// }
/// ```
///
/// # When a rank fails
///
/// A task's failure is that item's error, as on a `ProcessPool`. A rank
/// whose process itself dies (killed from outside, or its machine lost) is
/// not: MPI (Open MPI's `mpirun`) ends the whole job, rank 0 included, and
/// says which rank failed. A panic on rank 0's main thread aborts the job
/// (`MPI_Abort`) after printing its message, rather than leaving the other
/// ranks waiting; when `main` returns, every rank ends with it.
///
/// One `MpiPool` exists at a time.
pub struct MpiPool {
    engine: Engine,
}

impl MpiPool {
    /// A pool of worker processes on every other rank, as many on each as
    /// its host has CPUs; [`builder`](MpiPool::builder) sets the number.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// Options for a new pool: workers per rank (`workers`), chunk size,
    /// worker recycling, an initializer, a timeout and a memory limit.
    ///
    /// ```no_run
    /// # // Needs an MPI job: `mpirun -n 3 <program>`.
    /// let pool = forkmap::MpiPool::builder().workers(4).build()?;
    /// # Ok::<(), forkmap::Error>(())
    /// ```
    pub fn builder() -> Builder<MpiPool> {
        Builder::new()
    }

    pub(crate) fn from_engine(engine: Engine) -> Self {
        MpiPool { engine }
    }
}

/// Starts a pool of `per_rank` workers (by default, as many as each host has
/// CPUs) run with `options` on every other rank, and checks that each runs
/// this build of the program.
pub(crate) fn start_ranks(
    per_rank: Option<usize>,
    options: &WorkerOptions,
) -> Result<Vec<RemoteRank>, Error> {
    if !environment::started() {
        return Err(Error::Config(
            "an MpiPool needs an MPI job, started by forkmap::init() first in main, in a \
             program run by mpirun (or mpiexec, srun)",
        ));
    }
    let place = environment::place();
    if place.size < 2 {
        return Err(Error::Config(
            "an MpiPool needs ranks other than 0: run the program with mpirun -n 2 or more",
        ));
    }
    if !environment::take_pool() {
        return Err(Error::Config("an MpiPool exists already: one at a time"));
    }
    let start = ToRank::Start {
        workers: per_rank.map(|n| u32::try_from(n).expect("at most 65,536, as the builder checks")),
        max_tasks: options.max_tasks,
        memory_limit: options.memory_limit,
        ring_size: options.ring_size as u64,
        init: options.init.as_deref().cloned(),
    };
    for rank in 1..place.size {
        send_control(rank, &start);
    }
    let mut ranks = Vec::new();
    let mut failure = None;
    for rank in 1..place.size {
        match answer_of(rank) {
            Ok(workers) => ranks.push(RemoteRank { rank, workers }),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(failure) = failure {
        for rank in 1..place.size {
            send_control(rank, &ToRank::Release);
        }
        environment::release_pool();
        return Err(failure);
    }
    Ok(ranks)
}

/// Waits for `rank` to say that its pool has started, and checks that it runs
/// this build of the program: its number of workers.
fn answer_of(rank: i32) -> Result<u32, Error> {
    let spawn = |reason: String| Error::Spawn(std::io::Error::other(reason));
    let deadline = Instant::now() + START_WITHIN;
    loop {
        let incoming = receive_until(rank, deadline).ok_or_else(|| {
            spawn(format!(
                "rank {rank} did not start its pool within {START_WITHIN:?}"
            ))
        })?;
        // Frames left over from an earlier pool are nobody's now.
        if incoming.tag != CONTROL {
            continue;
        }
        return match codec::decode::<FromRank>(&incoming.bytes) {
            Ok(FromRank::Started {
                build,
                remotes,
                workers,
            }) => {
                if build != code::build_identity() || remotes != entry::remotes_identity() {
                    return Err(spawn(format!(
                        "rank {rank} runs another build of the program (another binary, or \
                         another version of it): every rank must run the same one"
                    )));
                }
                Ok(workers)
            }
            Ok(FromRank::Failed(reason)) => Err(spawn(format!(
                "rank {rank} could not start its pool: {reason}"
            ))),
            Err(e) => Err(spawn(format!(
                "rank {rank} answered what is not an answer: {e}"
            ))),
        };
    }
}

inherent_calls!(MpiPool);
engine_pool!(MpiPool);
