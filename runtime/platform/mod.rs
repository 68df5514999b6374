//! Every call into the operating system beyond plain `std`: fork, waitpid,
//! kill, poll, prctl, shared memory and clocks. Linux only, for now.

mod shared;

pub(crate) use shared::SharedBoard;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use crate::board::Board;
use crate::error::Death;

/// The parent-side descriptors of every pool in this process. A freshly
/// forked worker closes all of them, so that no worker holds another worker's
/// channel open (which would hide that channel's end-of-file) and no worker
/// can read another's frames.
static OURS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn ours() -> MutexGuard<'static, Vec<RawFd>> {
    OURS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A socket that belongs to a pool, closed in every worker forked after it.
#[derive(Debug)]
pub(crate) struct Private {
    stream: Option<UnixStream>,
}

impl Private {
    /// Registers a socket; call with [`OURS`] locked.
    fn register(ours: &mut Vec<RawFd>, stream: UnixStream) -> Self {
        ours.push(stream.as_raw_fd());
        Private {
            stream: Some(stream),
        }
    }

    pub(crate) fn stream(&self) -> &UnixStream {
        self.stream
            .as_ref()
            .expect("a Private holds its stream until dropped")
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        // Unregister and close under the lock, so that no fork in between
        // copies a descriptor that its child would then not close.
        let mut ours = ours();
        if let Some(stream) = self.stream.take() {
            let fd = stream.as_raw_fd();
            ours.retain(|&other| other != fd);
            drop(stream);
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

/// A worker process and the parent's end of its channel.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: Pid,
    pub(crate) channel: Private,
}

/// Forks a worker that runs `body` on its end of a new channel, then exits
/// with the code `body` returns. The parent's end is non-blocking.
///
/// The worker dies with the thread that calls this (`PR_SET_PDEATHSIG`), so
/// call it from the thread that owns the pool for the pool's whole life.
pub(crate) fn spawn_worker(
    body: fn(&UnixStream, &Board) -> i32,
    board: &SharedBoard,
) -> io::Result<Spawned> {
    let mut ours = ours();
    let (parent_end, child_end) = UnixStream::pair()?;
    parent_end.set_nonblocking(true)?;
    let inherited: Vec<RawFd> = ours.clone();
    let parent = unistd::getpid();
    // SAFETY: `fork` is sound to call; what needs care is what the child does
    // afterwards, since it starts as a copy of this process with only the
    // calling thread. The child runs `child` below and never returns from
    // this function: it closes descriptors that are not its own, arms its
    // death signal, runs the worker loop and leaves with `_exit`, so it never
    // unwinds into the parent's frames or runs the parent's destructors or
    // `atexit` handlers. The worker loop allocates and runs user code; locks
    // that other parent threads held at the fork stay locked in the child
    // (the glibc allocator's are reset by its own fork handlers), which is
    // the hazard documented on `ProcessPool`.
    match unsafe { unistd::fork() }? {
        ForkResult::Child => {
            drop(ours);
            child(parent, inherited, parent_end, child_end, board, body)
        }
        ForkResult::Parent { child } => {
            drop(child_end);
            Ok(Spawned {
                pid: child,
                channel: Private::register(&mut ours, parent_end),
            })
        }
    }
}

/// The first and last code a worker runs.
fn child(
    parent: Pid,
    inherited: Vec<RawFd>,
    parent_end: UnixStream,
    child_end: UnixStream,
    board: &Board,
    body: fn(&UnixStream, &Board) -> i32,
) -> ! {
    for fd in inherited {
        // Closing by number: these are the parent-side sockets of other
        // workers and pools, owned by `Private` values that this process
        // will never drop, so nothing else closes or reuses them here.
        let _ = unistd::close(fd);
    }
    drop(parent_end);
    let armed = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok();
    let code = if !armed || unistd::getppid() != parent {
        // The parent is already gone (or cannot be watched): do no work.
        1
    } else {
        std::panic::catch_unwind(move || body(&child_end, board)).unwrap_or(101)
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; skipping destructors and
    // `atexit` handlers is the point, since they belong to the parent.
    unsafe { nix::libc::_exit(code) }
}

/// Reaps a worker whose channel has closed, and says how it ended. A worker
/// that does not end by itself within a moment, or at all when `kill` is
/// set, is killed first.
pub(crate) fn reap(pid: Pid, kill: bool) -> Death {
    if !kill {
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                    thread::sleep(Duration::from_micros(200))
                }
                status => return death(status),
            }
        }
    }
    let _ = signal::kill(pid, Signal::SIGKILL);
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => {}
            status => return death(status),
        }
    }
}

/// The resident memory of a process, in bytes, or `None` once it is gone.
pub(crate) fn resident_bytes(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = unistd::sysconf(unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * page as u64)
}

/// Kills a worker at once; its end-of-file follows, then [`reap`].
pub(crate) fn kill(pid: Pid) {
    let _ = signal::kill(pid, Signal::SIGKILL);
}

fn death(status: nix::Result<WaitStatus>) -> Death {
    match status {
        Ok(WaitStatus::Exited(_, code)) => Death::Exit(code),
        Ok(WaitStatus::Signaled(_, signal, _)) => Death::Signal(signal as i32),
        _ => Death::Unknown,
    }
}

/// Nanoseconds of the monotonic clock, which every process of the machine
/// shares.
pub(crate) fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(now) => (now.tv_sec() as u64) * 1_000_000_000 + now.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// The conventional name of a signal number.
pub(crate) fn signal_name(number: i32) -> Option<&'static str> {
    Signal::try_from(number).ok().map(Signal::as_str)
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
