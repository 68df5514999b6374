//! The MPI job this program runs in: MPI started (only under an MPI
//! launcher), which rank this is, and how the job ends: a normal return
//! from `main` on rank 0 tells every rank to leave and finalizes MPI; a
//! panic on rank 0's main thread aborts the job (`MPI_Abort`) after its
//! message, rather than hanging in `MPI_Finalize`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use mpi::environment::Universe;
use mpi::topology::Rank;
use mpi::traits::Communicator;
use mpi::Threading;

use crate::backend::mpi::{send_control, world};
use crate::platform;
use crate::protocol::message::ToRank;

/// MPI, once started; dropping it finalizes MPI.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// A pool over the job's ranks exists: there is one at a time, since its
/// receiver takes every message that comes.
static POOL: AtomicBool = AtomicBool::new(false);

/// The job is ending: receivers stop, so that MPI is finalized while no
/// other thread is inside it.
static ENDING: AtomicBool = AtomicBool::new(false);

/// How many receiver threads are inside their loop.
static RECEIVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// This process's place in an MPI job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) rank: Rank,
    pub(crate) size: Rank,
}

/// Whether this program was started by an MPI launcher (`mpirun`,
/// `mpiexec`, `srun`): the variables each sets in its processes.
fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some())
}

/// Starts MPI, unless it has started or the program was not started by an
/// MPI launcher (then `Ok(None)`). On rank 0, arranges for the job's end.
pub(crate) fn start() -> Result<Option<Place>, String> {
    let mut universe = UNIVERSE.lock().unwrap_or_else(PoisonError::into_inner);
    if universe.is_none() {
        if !launched_by_mpi() {
            return Ok(None);
        }
        let (started, threading) = mpi::initialize_with_threading(Threading::Multiple)
            .ok_or("MPI was already started, by something other than forkmap")?;
        if threading != Threading::Multiple {
            return Err(format!(
                "this MPI offers threads at the level {threading:?}; forkmap needs Multiple"
            ));
        }
        *universe = Some(started);
        let place = place();
        if place.rank == 0 {
            platform::at_exit(end_job);
            abort_on_main_panic();
        }
    }
    Ok(Some(place()))
}

/// Where this process stands in the job, once MPI has started.
pub(crate) fn place() -> Place {
    let world = world();
    Place {
        rank: world.rank(),
        size: world.size(),
    }
}

/// Whether MPI has started.
pub(crate) fn started() -> bool {
    UNIVERSE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
}

/// Takes the job's one pool slot; false if a pool holds it.
pub(crate) fn take_pool() -> bool {
    !POOL.swap(true, Ordering::AcqRel)
}

/// Gives the pool slot back.
pub(crate) fn release_pool() {
    POOL.store(false, Ordering::Release);
}

/// Finalizes MPI (a rank other than 0, told to leave).
pub(crate) fn finalize() {
    drop(
        UNIVERSE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
}

/// Whether the job is ending: a receiver leaves its loop.
pub(crate) fn ending() -> bool {
    ENDING.load(Ordering::Acquire)
}

/// Counts a receiver in its loop, until the guard drops.
pub(crate) fn receiving() -> impl Drop {
    struct Receiving;
    impl Drop for Receiving {
        fn drop(&mut self) {
            RECEIVERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    RECEIVERS.fetch_add(1, Ordering::AcqRel);
    Receiving
}

/// At rank 0's exit: receivers stop (a pool still alive, in a static say),
/// every other rank leaves, then MPI is finalized.
extern "C" fn end_job() {
    if !started() {
        return;
    }
    ENDING.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while RECEIVERS.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for rank in 1..place().size {
        send_control(rank, &ToRank::Exit);
    }
    finalize();
}

/// A panic on rank 0's main thread ends the job at once: the message is
/// printed, then `MPI_Abort` ends every rank (a panic would otherwise end
/// `main` and hang in `MPI_Finalize` while other ranks wait).
fn abort_on_main_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        // A task's panic (a serial pool runs tasks on the main thread) is
        // that item's error, not the program's end.
        if std::thread::current().name() == Some("main") && !crate::unwind::in_task() {
            world().abort(101);
        }
    }));
}
