//! Every call into the operating system beyond plain `std`: fork, waitpid,
//! kill, poll, prctl, passing descriptors, shared memory and clocks. Linux
//! only, for now.

pub(crate) mod bell;
pub(crate) mod board;
pub(crate) mod code;
mod death;
pub(crate) mod identity;
pub(crate) mod link;
mod process;
pub(crate) mod ring;
mod rust_runtime;
mod server;
mod shared;

pub use death::Death;
pub(crate) use death::Reaped;
pub(crate) use process::WorkerBody;
pub(crate) use rust_runtime::set_task;
pub(crate) use server::WORKER_BODY;

use link::{NewLink, PoolEnds, WorkerEnds};
pub(crate) use shared::SharedBoard;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::{self, Pid};

/// The parent-side descriptors of every pool in this process. A freshly
/// forked worker closes all of them, so that no worker holds another worker's
/// channel open (which would hide that channel's end-of-file) and no worker
/// can read another's frames. Dropping a [`Private`] takes this lock, so
/// none may be dropped while it is held.
static OURS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn ours() -> MutexGuard<'static, Vec<RawFd>> {
    OURS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A descriptor that belongs to a pool (a socket, a pidfd), closed in
/// every worker forked after it.
#[derive(Debug)]
pub(crate) struct Private<T: AsRawFd = UnixStream> {
    inner: Option<T>,
}

impl<T: AsRawFd> Private<T> {
    /// Registers a descriptor; call with [`OURS`] locked.
    fn register(ours: &mut Vec<RawFd>, inner: T) -> Self {
        ours.push(inner.as_raw_fd());
        Private { inner: Some(inner) }
    }

    pub(crate) fn get(&self) -> &T {
        self.inner
            .as_ref()
            .expect("a Private holds its descriptor until dropped")
    }
}

impl Private {
    pub(crate) fn stream(&self) -> &UnixStream {
        self.get()
    }
}

impl<T: AsRawFd> Drop for Private<T> {
    fn drop(&mut self) {
        // Unregister and close under the lock, so that no fork in between
        // copies a descriptor that its child would then not close.
        let mut ours = ours();
        if let Some(inner) = self.inner.take() {
            let fd = inner.as_raw_fd();
            ours.retain(|&other| other != fd);
            drop(inner);
        }
    }
}

/// A connected pair of non-blocking private sockets.
pub(crate) fn private_pair() -> io::Result<(Private, Private)> {
    let mut ours = ours();
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((
        Private::register(&mut ours, a),
        Private::register(&mut ours, b),
    ))
}

/// A worker process: its pid, and who forked it. Dropped without having
/// been reaped (a pool that failed to start, a dispatcher that panicked), it
/// kills and reaps the worker, so that none is left behind.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    /// The worker's pidfd, where the system has them.
    exit: Option<Private<OwnedFd>>,
    /// Who forked it, and so who can reap it.
    forker: Forker,
    reaped: bool,
}

/// Who forked a worker.
#[derive(Debug, Clone, Copy)]
enum Forker {
    /// A fork server, of this generation: only it can reap the worker.
    Server(u64),
    /// This process.
    Program,
}

impl Child {
    /// The worker `pid`, with its pidfd registered in `ours` (locked by
    /// the caller). Where the system has no pidfds (Linux before 5.3, or
    /// under valgrind), its end is seen from its channel alone; any other
    /// failure to get one kills and reaps the worker.
    fn new(ours: &mut Vec<RawFd>, pid: Pid, forker: Forker) -> io::Result<Self> {
        let mut child = Child {
            pid,
            exit: None,
            forker,
            reaped: false,
        };
        match process::pidfd_open(pid) {
            Ok(exit) => child.exit = Some(Private::register(ours, exit)),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSYS) => {}
            // Dropping the child kills and reaps it.
            Err(e) => return Err(e),
        }
        Ok(child)
    }

    /// A descriptor that polls readable once the worker has ended, where
    /// the system has pidfds.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.exit.as_ref().map(|exit| exit.get().as_fd())
    }

    /// Waits for the worker, whose channel has closed, and says how it
    /// ended. One that does not end by itself within a moment, or at all
    /// when `kill` is set, is killed first.
    pub(crate) fn reap(mut self, kill: bool) -> Reaped {
        self.wait(kill)
    }

    fn wait(&mut self, kill: bool) -> Reaped {
        self.reaped = true;
        match self.forker {
            Forker::Server(generation) => server::reap(self.pid, kill, generation),
            Forker::Program => process::reap(self.pid, kill),
        }
    }

    /// Kills the worker at once, and its process group (what its tasks
    /// started); its end follows, then [`reap`](Child::reap). It has not
    /// been reaped yet, so its pid, and its group's, are still its own.
    pub(crate) fn kill(&self) {
        if let Some(exit) = &self.exit {
            process::pidfd_kill(exit.get());
        }
        process::kill_group(self.pid);
    }

    /// Its resident memory of its own, in bytes (resident pages less those
    /// backed by files or shared memory: not its rings, not the program's
    /// code), or `None` once it is gone.
    pub(crate) fn resident(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let mut fields = statm.split_whitespace().skip(1);
        let resident: u64 = fields.next()?.parse().ok()?;
        let shared: u64 = fields.next()?.parse().ok()?;
        let page = unistd::sysconf(unistd::SysconfVar::PAGE_SIZE).ok()??;
        Some(resident.saturating_sub(shared) * page as u64)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.wait(true);
        }
    }
}

/// A new worker process, the pool's side of its link, and its board.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) link: PoolEnds,
    pub(crate) board: SharedBoard,
}

/// Starts a worker process with rings of `ring_size` bytes, which runs the
/// worker body (`WORKER_BODY`) on its side of a new link: forked by the
/// fork server, started the first time it is needed, and from the calling
/// thread when no server can be started. A worker forked from the calling
/// thread dies with it (`PR_SET_PDEATHSIG`), so call this from the thread
/// that owns the pool for the pool's whole life.
pub(crate) fn spawn_worker(ring_size: usize) -> io::Result<Spawned> {
    if let Some(forked) = server::spawn(ring_size) {
        let forked = forked?;
        let (child, link) = {
            let mut ours = ours();
            let child = Child::new(&mut ours, forked.pid, Forker::Server(forked.generation));
            (child, forked.link.open(&mut ours))
        };
        // Looked at with the lock released: dropping a child or a link
        // takes it. A child dropped here (its link did not open: no
        // address space for its rings) is killed and reaped.
        return Ok(Spawned {
            child: child?,
            link: link?,
            board: forked.board,
        });
    }
    let Some(&body) = server::WORKER_BODY.first() else {
        return Err(io::Error::other(
            "no worker body is linked into this program",
        ));
    };
    let board = SharedBoard::new()?;
    // The link is made under the lock, so that no other thread's fork copies
    // its descriptors before they are registered.
    let mut ours = ours();
    let link = NewLink::new(ring_size)?;
    let pool = link.pool.open(&mut ours)?;
    // Every descriptor of every pool, this worker's side included: a new
    // worker closes them all. The lock is held across the fork, so that no
    // other thread opens or closes one in between, and released in the
    // worker.
    let inherited: Vec<RawFd> = ours.clone();
    let (pid, ours) =
        process::fork_worker(&inherited, None, &board, body, Some(ours), link.worker)?;
    let mut ours = ours.expect("fork_worker gives the list back");
    let child = Child::new(&mut ours, pid, Forker::Program);
    // Released before `pool` can be dropped, which takes it.
    drop(ours);
    Ok(Spawned {
        child: child?,
        link: pool,
        board,
    })
}

/// A link for a worker thread of this process, with rings of `ring_size`
/// bytes: the pool's side and the thread's. Both are the pool's own:
/// a worker forked from this process closes their descriptors, and their
/// rings are not mapped in it.
pub(crate) fn thread_link(ring_size: usize) -> io::Result<(PoolEnds, ThreadEnds)> {
    // Made under the lock, so that no fork copies them before they are
    // registered.
    let mut ours = ours();
    let link = NewLink::new(ring_size)?;
    let pool = link.pool.open(&mut ours)?;
    let worker = link.worker;
    worker.down.keep_from_children();
    worker.up.keep_from_children();
    let fds = [worker.socket.as_raw_fd(), worker.bell.as_raw_fd()];
    ours.extend(fds);
    Ok((
        pool,
        ThreadEnds {
            ends: Some(worker),
            fds,
        },
    ))
}

/// A worker thread's side of its link, registered as the pool's own
/// descriptors are.
#[derive(Debug)]
pub(crate) struct ThreadEnds {
    ends: Option<WorkerEnds>,
    fds: [RawFd; 2],
}

impl ThreadEnds {
    pub(crate) fn ends(&mut self) -> &mut WorkerEnds {
        self.ends
            .as_mut()
            .expect("a thread's ends are there until dropped")
    }
}

impl Drop for ThreadEnds {
    fn drop(&mut self) {
        // As a `Private` is dropped: unregistered and closed under the lock.
        let mut ours = ours();
        ours.retain(|fd| !self.fds.contains(fd));
        drop(self.ends.take());
    }
}

/// Starts the fork server now, unless it runs already; an error says why
/// none can be started (workers are then forked from the program).
pub(crate) fn start_server() -> io::Result<()> {
    server::start()
}

/// Runs `f` when this process exits normally (a return from `main`, or
/// `exit`).
#[cfg(feature = "mpi")]
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `atexit` only records a plain function, which runs in this
    // process when it exits.
    unsafe { nix::libc::atexit(f) };
}

/// Nanoseconds of the monotonic clock, which every process of the machine
/// shares.
pub(crate) fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(now) => (now.tv_sec() as u64) * 1_000_000_000 + now.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// What [`poll`] found on one descriptor.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ready {
    /// Bytes to read, or the peer closed, or an error is pending: read to see.
    pub(crate) readable: bool,
}

/// Waits until one of the descriptors is ready: each is watched for reading,
/// and for writing too when its flag is set (what it found then is not
/// said: try to write).
pub(crate) fn poll(
    watched: &[(BorrowedFd<'_>, bool)],
    timeout: Option<Duration>,
) -> io::Result<Vec<Ready>> {
    let mut fds: Vec<PollFd<'_>> = watched
        .iter()
        .map(|&(fd, write)| {
            let mut flags = PollFlags::POLLIN;
            if write {
                flags |= PollFlags::POLLOUT;
            }
            PollFd::new(fd, flags)
        })
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
    };
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(fds
        .iter()
        .map(|fd| {
            let events = fd.revents().unwrap_or(PollFlags::empty());
            Ready {
                readable: events
                    .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
            }
        })
        .collect())
}
