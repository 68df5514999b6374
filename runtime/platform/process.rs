//! Forking one worker, the first and last code it runs, and reaping it.
//! Both ways of starting workers use these: forking from the pool's own
//! thread, and forking from the fork server.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::MutexGuard;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

use super::{Death, Reaped};
use crate::platform::board::Board;
use crate::platform::link::WorkerEnds;

/// Signals a task could send its worker's parent, the fork server, that
/// would end or stop it: the server ignores them (nothing legitimate sends
/// them: it is in a process group of its own, and ends when the program's
/// socket closes), and its workers take back the actions it found.
const SHIELDED: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// The signals, of [`SHIELDED`] and SIGCHLD, that this process (the fork
/// server) found with the default action, as bits `1 << signal`: what its
/// workers take back, so that they start as the program's own children
/// would (a signal the program ignores, under `nohup` say, stays ignored).
static SHIELDED_DEFAULTS: AtomicU64 = AtomicU64::new(0);

/// Makes this process (the fork server) ignore the [`SHIELDED`] signals, and
/// take SIGCHLD's default action: a program that ignores SIGCHLD passes
/// that on through `exec`, and the kernel would then reap the workers
/// itself, losing how they ended.
pub(super) fn shield() {
    SHIELDING.store(true, Ordering::Relaxed);
    let mut defaults = 0;
    for signal in SHIELDED {
        // SAFETY: setting a signal's action to "ignore" installs no code.
        if let Ok(SigHandler::SigDfl) = unsafe { signal::signal(signal, SigHandler::SigIgn) } {
            defaults |= 1 << signal as u64;
        }
    }
    // SAFETY: setting a signal's action to its default installs no code.
    if let Ok(SigHandler::SigDfl) = unsafe { signal::signal(Signal::SIGCHLD, SigHandler::SigDfl) } {
        defaults |= 1 << Signal::SIGCHLD as u64;
    }
    SHIELDED_DEFAULTS.store(defaults, Ordering::Relaxed);
}

/// In a worker of a process that [`shield`]s itself: the actions that
/// process found, default or ignore.
fn unshield() {
    if !SHIELDING.load(Ordering::Relaxed) {
        return;
    }
    let defaults = SHIELDED_DEFAULTS.load(Ordering::Relaxed);
    for signal in SHIELDED.into_iter().chain([Signal::SIGCHLD]) {
        let handler = match defaults & (1 << signal as u64) {
            0 => SigHandler::SigIgn,
            _ => SigHandler::SigDfl,
        };
        // SAFETY: setting a signal's action to "ignore" or to its default
        // installs no code.
        let _ = unsafe { signal::signal(signal, handler) };
    }
}

/// Whether this process shields itself (it is the fork server), and so
/// whether a worker it forks must take the actions back.
static SHIELDING: AtomicBool = AtomicBool::new(false);

/// The locked list of a process's pool descriptors (`platform::OURS`).
pub(super) type Ours = MutexGuard<'static, Vec<RawFd>>;

/// What a worker runs: it serves its side of its link and returns the
/// process's exit code.
pub(crate) type WorkerBody = fn(&mut WorkerEnds, &Board) -> i32;

/// Forks a worker that runs `body` on `ends`, its side of a new link,
/// posting on `board`, then exits with the code `body` returns; this
/// process keeps none of `ends`. The worker first closes the descriptors in
/// `close`, which are not its own, and, when `held` is given, empties and
/// drops it: the list of the forking process's pool descriptors (all among
/// `close`), which the caller holds locked across the fork and which the
/// worker would otherwise keep locked for good (its copy of the lock is the
/// caller's, in the state it had). With `cwd`, a directory open in the
/// forking process, the worker makes it its current directory, and closes
/// it. Returns its pid, and `held` back.
///
/// The worker dies with the thread that calls this (`PR_SET_PDEATHSIG`), so
/// call it from a thread that lives as long as the worker should.
pub(super) fn fork_worker(
    close: &[RawFd],
    cwd: Option<RawFd>,
    board: &Board,
    body: WorkerBody,
    held: Option<Ours>,
    ends: WorkerEnds,
) -> io::Result<(Pid, Option<Ours>)> {
    flush_standard_streams();
    let parent = unistd::getpid();
    // SAFETY: `fork` is sound to call; what needs care is what the child does
    // afterwards, since it starts as a copy of this process with only the
    // calling thread. The child runs `worker_main` and never returns from
    // this function: it closes descriptors that are not its own, arms its
    // death signal, runs the worker loop and leaves with `_exit`, so it never
    // unwinds into the parent's frames or runs the parent's destructors or
    // `atexit` handlers. The worker loop allocates and runs user code; locks
    // that other threads of the forking process held at the fork stay locked
    // in the child (the glibc allocator's are reset by its own fork
    // handlers), which is why the fork server exists: it has no other
    // threads. The hazard without it is documented on `forkmap::init`.
    match unsafe { unistd::fork() }? {
        ForkResult::Child => {
            // The worker closes these below: a pool it starts itself must
            // not take their numbers, reused, for its own.
            if let Some(mut ours) = held {
                ours.clear();
            }
            worker_main(parent, close, cwd, ends, board, body)
        }
        ForkResult::Parent { child } => {
            drop(ends);
            Ok((child, held))
        }
    }
}

/// The first and last code a worker runs.
fn worker_main(
    parent: Pid,
    close: &[RawFd],
    cwd: Option<RawFd>,
    ends: WorkerEnds,
    board: &Board,
    body: WorkerBody,
) -> ! {
    set_name(c"forkmap-worker");
    unshield();
    super::rust_runtime::set_up();
    // A group of its own: terminal signals meant for the program do not
    // reach it, a task's `kill(0, ..)` reaches only it and what it started,
    // and killing the group kills what its tasks started too.
    let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    if let Some(cwd) = cwd {
        // SAFETY: `cwd` is open in this process (the forking process holds
        // it until after the fork); it is only borrowed for the call.
        let _ = unistd::fchdir(unsafe { std::os::fd::BorrowedFd::borrow_raw(cwd) });
    }
    for &fd in close.iter().chain(&cwd) {
        // Closing by number: these belong to the forking process (its other
        // links, the fork server's control socket), owned by values that
        // this process will never drop, so nothing else closes or reuses
        // them here.
        let _ = unistd::close(fd);
    }
    let armed = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok();
    let code = if !armed || unistd::getppid() != parent {
        // The parent is already gone (or cannot be watched): do no work.
        1
    } else {
        let mut ends = ends;
        // Unwind-safe: after a panic, the ends are only forgotten.
        let run = std::panic::AssertUnwindSafe(|| body(&mut ends, board));
        let code = std::panic::catch_unwind(run).unwrap_or(101);
        // Not dropped: a task may have closed these descriptors, and closing
        // them again would abort a debug build; `exit` closes what is open.
        std::mem::forget(ends);
        code
    };
    exit(code)
}

/// Names this process (what `ps` and `top` show), or its thread.
pub(super) fn set_name(name: &std::ffi::CStr) {
    let _ = nix::sys::prctl::set_name(name);
}

/// Closes every descriptor from 3 on but `keep`: what a process that
/// starts afresh must not hold of the one that started it.
pub(super) fn close_all_but(keep: RawFd) {
    let keep = keep as u32;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, u32::MAX)] {
        if first <= last {
            // SAFETY: `close_range` closes descriptors by number and touches
            // no memory. The caller has just started (the fork server,
            // before `main`): nothing it holds refers to these descriptors.
            unsafe {
                nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0);
            }
        }
    }
}

/// Writes out what this process's standard streams hold, before a fork:
/// otherwise the child would hold a copy, and print it a second time.
pub(super) fn flush_standard_streams() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
}

/// Flushes the standard streams and ends this process at once.
pub(super) fn exit(code: i32) -> ! {
    flush_standard_streams();
    // SAFETY: `_exit` ends the process at once; skipping destructors and
    // `atexit` handlers is the point, since they belong to the process this
    // one was forked from.
    unsafe { nix::libc::_exit(code) }
}

/// How long a worker whose channel has closed has to end by itself before
/// it is killed.
const LINGER: Duration = Duration::from_millis(200);

/// Reaps a child whose channel has closed, and says how it ended. A child
/// that does not end by itself within [`LINGER`], or at all when `kill` is
/// set, is killed first.
///
/// Whatever is left in the worker's process group (processes its tasks
/// started) is killed too, before the worker is reaped: until then its pid,
/// which is the group's id, cannot be given to another process.
pub(super) fn reap(pid: Pid, kill: bool) -> Reaped {
    let lingered = !kill && !ends_within(pid, LINGER);
    kill_group(pid);
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => {}
            status => {
                return Reaped {
                    death: death(status),
                    lingered,
                }
            }
        }
    }
}

/// Whether the child `pid` ends within `wait` (or cannot be waited for),
/// without reaping it.
fn ends_within(pid: Pid, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let exited = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), exited) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) if Instant::now() < deadline => {
                thread::sleep(Duration::from_micros(200))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => return false,
            _ => return true,
        }
    }
}

/// A pidfd of process `pid`: it polls readable once the process has ended.
/// Unlike a channel's end-of-file, nothing the process left behind (a child
/// holding the channel open) can delay it.
pub(super) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: `pidfd_open` takes a pid and a flags word and returns a new
    // descriptor or -1; it touches no memory of this process.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel has just made this descriptor for this process
    // (close-on-exec, as `pidfd_open` makes them); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Kills a worker and its process group (what its tasks started). Call it
/// only before the worker is reaped, while its pid is still its group's.
pub(super) fn kill_group(pid: Pid) {
    let _ = signal::kill(pid, Signal::SIGKILL);
    let _ = signal::killpg(pid, Signal::SIGKILL);
}

/// Sends SIGKILL through a pidfd: to that process, even if it has ended and
/// its pid was given to another.
pub(super) fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: `pidfd_send_signal` takes a pidfd, a signal, a null info
    // pointer and a flags word; it touches no memory of this process.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            nix::libc::SIGKILL,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        );
    }
}

fn death(status: nix::Result<WaitStatus>) -> Death {
    match status {
        Ok(WaitStatus::Exited(_, code)) => Death::Exit(code),
        Ok(WaitStatus::Signaled(_, signal, _)) => Death::Signal(signal as i32),
        _ => Death::Unknown,
    }
}
