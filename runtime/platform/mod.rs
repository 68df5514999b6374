//! Every call into the operating system beyond plain `std`: fork, waitpid,
//! kill, poll, prctl, passing descriptors, shared memory and clocks. Linux
//! only, for now.

pub(crate) mod board;
pub(crate) mod code;
mod death;
mod process;
mod server;
mod shared;

pub use death::Death;
pub(crate) use process::{in_worker, WorkerBody};
pub(crate) use shared::SharedBoard;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, Signal};
use nix::unistd::{self, Pid};

/// The parent-side descriptors of every pool in this process. A freshly
/// forked worker closes all of them, so that no worker holds another worker's
/// channel open (which would hide that channel's end-of-file) and no worker
/// can read another's frames.
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
    /// Forked by the fork server, which alone can reap it.
    by_server: bool,
    reaped: bool,
}

impl Child {
    /// The worker `pid`, with its pidfd registered in `ours` (locked by
    /// the caller). Where the system has no pidfds (Linux before 5.3, or
    /// under valgrind), its end is seen from its channel alone; any other
    /// failure to get one kills and reaps the worker.
    fn new(ours: &mut Vec<RawFd>, pid: Pid, by_server: bool) -> io::Result<Self> {
        let exit = match process::pidfd_open(pid) {
            Ok(exit) => Some(Private::register(ours, exit)),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSYS) => None,
            Err(e) => {
                let _ = signal::kill(pid, Signal::SIGKILL);
                match by_server {
                    true => server::reap(pid, true),
                    false => process::reap(pid, true),
                };
                return Err(e);
            }
        };
        Ok(Child {
            pid,
            exit,
            by_server,
            reaped: false,
        })
    }

    /// A descriptor that polls readable once the worker has ended, where
    /// the system has pidfds.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.exit.as_ref().map(|exit| exit.get().as_fd())
    }

    /// Waits for the worker, whose channel has closed, and says how it
    /// ended. One that does not end by itself within a moment, or at all
    /// when `kill` is set, is killed first.
    pub(crate) fn reap(mut self, kill: bool) -> Death {
        self.wait(kill)
    }

    fn wait(&mut self, kill: bool) -> Death {
        self.reaped = true;
        if self.by_server {
            server::reap(self.pid, kill)
        } else {
            process::reap(self.pid, kill)
        }
    }

    /// Kills the worker at once; its end-of-file follows, then [`reap`](Child::reap).
    pub(crate) fn kill(&self) {
        let _ = signal::kill(self.pid, Signal::SIGKILL);
    }

    /// Its resident memory, in bytes, or `None` once it is gone.
    pub(crate) fn resident(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page = unistd::sysconf(unistd::SysconfVar::PAGE_SIZE).ok()??;
        Some(pages * page as u64)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.wait(true);
        }
    }
}

/// A new worker process, the parent's end of its channel, and its board.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) channel: Private,
    pub(crate) board: SharedBoard,
}

/// Starts a worker process that runs `body` on its end of a new channel:
/// forked by the fork server when [`start_server`] has run, and otherwise
/// from the calling thread, which the worker then dies with
/// (`PR_SET_PDEATHSIG`), so call it from the thread that owns the pool for
/// the pool's whole life.
pub(crate) fn spawn_worker(body: WorkerBody) -> io::Result<Spawned> {
    if let Some((pid, channel, board)) = server::spawn() {
        let mut ours = ours();
        return Ok(Spawned {
            child: Child::new(&mut ours, pid, true)?,
            channel: Private::register(&mut ours, channel),
            board,
        });
    }
    let board = SharedBoard::new()?;
    let ours = ours();
    // Every descriptor of every pool: a new worker closes them all. The lock
    // is held across the fork, so that no other thread opens or closes one
    // in between, and released in the worker.
    let inherited: Vec<RawFd> = ours.clone();
    let (pid, channel, ours) = process::fork_worker(&inherited, &board, body, Some(ours))?;
    let mut ours = ours.expect("fork_worker gives the list back");
    Ok(Spawned {
        child: Child::new(&mut ours, pid, false)?,
        channel: Private::register(&mut ours, channel),
        board,
    })
}

/// Starts the fork server, from which every worker is forked from now on;
/// false if it was running already. Call it while this process has one
/// thread.
pub(crate) fn start_server(body: WorkerBody) -> io::Result<bool> {
    server::start(body)
}

/// Whether workers come from the fork server.
pub(crate) fn server_running() -> bool {
    server::running()
}

/// How many threads this process has.
pub(crate) fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
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
    /// Room to write.
    pub(crate) writable: bool,
}

/// Waits until one of the descriptors is ready: each is watched for reading,
/// and for writing too when its flag is set.
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
                writable: events.intersects(PollFlags::POLLOUT | PollFlags::POLLERR),
            }
        })
        .collect())
}
