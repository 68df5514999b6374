//! The fork server: a fresh run of the program's own binary, started the
//! first time a worker is needed, which forks every worker from then on.
//!
//! A fork copies only the forking thread, and every lock that the other
//! threads held stays locked in the copy for good: stdout's while a thread
//! prints, a `OnceLock` being initialised, a logger's, a C library's. So
//! workers are never forked from the program. [`launch`] runs the program's
//! binary again (`/proc/self/exe`) with a marker in its environment and one
//! end of a socket pair as its standard input; [`serve_if_asked`], a function
//! the loader runs before `main` (an ELF constructor), recognises the marker
//! and serves forks from then on, never returning to `main`. The server has
//! never run the program's `main` or any of its threads: a worker forked
//! from it holds no lock it cannot take, and sees the program's statics as
//! they are when a program starts.
//!
//! The program talks to the server over a sequenced-packet socket, one
//! request and one reply at a time: *spawn* (the request says how large the
//! worker's rings are, and carries the program's current directory, where
//! the worker starts; the reply carries the new worker's pid, and its
//! board's memory file and the pool's side of its link as passed
//! descriptors, or the error that stopped the fork) and
//! *reap* (the reply says how the worker ended). Workers are the server's
//! children, so only it can reap them; the program can still kill them. The
//! server ends when the program's end of the socket closes, which happens
//! when the program exits or dies, or when the program ends while a process
//! it forked keeps a copy of that end (the server watches a pidfd of the
//! program); its workers die with it (`PR_SET_PDEATHSIG`). If the server
//! dies, the next spawn starts a new one; if no server can be started at
//! all, workers are forked from the program, with one warning.

use std::ffi::OsStr;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    getsockopt, sendmsg, socketpair, sockopt, AddressFamily, ControlMessage, MsgFlags, SockFlag,
    SockType,
};
use nix::unistd::{self, Pid};

use super::link::{NewLink, PoolFiles};
use super::process::{self, WorkerBody};
use super::{code, rust_runtime, Death, Reaped, SharedBoard};

/// The worker body: what a worker forked by the server runs. `crate::worker`
/// registers it; the server, which starts before `main`, finds it here.
#[linkme::distributed_slice]
pub(crate) static WORKER_BODY: [WorkerBody];

/// The environment variable that asks a run of the program to be a fork
/// server, and the version of the protocol it must speak.
const MARKER: &str = "FORKMAP_FORK_SERVER";
const VERSION: &str = "1";

/// The environment variable that silences the warning printed when no
/// server can be started.
const QUIET: &str = "FORKMAP_QUIET";

/// The environment variable that asks for no server: workers are forked
/// from the program, as where none can be started, without a warning.
const NO_SERVER: &str = "FORKMAP_NO_FORK_SERVER";

/// Whether an environment variable is set to something other than `0`.
fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty() && value != "0")
}

/// How long a new server may take to say it is ready.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

/// How long a server may take to answer a request. One that does not (it
/// is stuck) is killed, with its workers, and another started.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// How long a server may be slow to answer before it is sent SIGCONT.
const NUDGE_EVERY: Duration = Duration::from_millis(100);

/// The program's link to its fork server.
static SERVER: Mutex<State> = Mutex::new(State::NotStarted);

/// Numbers the servers a process starts.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

enum State {
    NotStarted,
    Running(Server),
    /// No server could be started, for this reason: workers are forked
    /// from the program.
    Unavailable(String),
}

struct Server {
    control: OwnedFd,
    process: std::process::Child,
    /// The process that started it: a process forked from that one (the
    /// program's own `fork`) must not use it.
    owner: Pid,
    /// Tells this server's workers from an earlier server's.
    generation: u64,
}

fn state() -> MutexGuard<'static, State> {
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

const SPAWN: u8 = 1;
const REAP: u8 = 2;
/// The first word of the server's hello.
const HELLO: [u8; 4] = *b"fkm1";

/// Every request and reply is this long.
type Message = [u8; 16];

/// A worker the server forked: its pid, the pool's side of its link, its
/// board, and the server it came from.
pub(crate) struct Forked {
    pub(crate) pid: Pid,
    pub(crate) link: PoolFiles,
    pub(crate) board: SharedBoard,
    pub(crate) generation: u64,
}

/// Starts the fork server now, unless it runs already; an error says why
/// none can be started (workers are then forked from the program).
pub(crate) fn start() -> io::Result<()> {
    let mut state = state();
    if current(&mut state)?.is_some() {
        return Ok(());
    }
    match &*state {
        State::Unavailable(reason) => Err(io::Error::other(reason.clone())),
        _ => Err(io::Error::other("the fork server could not be started")),
    }
}

/// The server of this process, started if it is not running; `Ok(None)`
/// when none can be started here, an error when one could not be started
/// now for want of a resource (descriptors, memory, processes), which a
/// later try may have.
fn current(state: &mut State) -> io::Result<Option<&mut Server>> {
    if let State::Running(server) = state {
        if server.owner != unistd::getpid() {
            // Inherited through the program's own fork: it serves the
            // parent. Closing this copy of its socket leaves the parent's.
            *state = State::NotStarted;
        }
    }
    if let State::NotStarted = state {
        if is_set(NO_SERVER) {
            *state = State::Unavailable(format!("{NO_SERVER} is set"));
            return Ok(None);
        }
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        *state = match launch(generation) {
            Ok(server) => State::Running(server),
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                warn_unavailable(&e);
                State::Unavailable(e.to_string())
            }
        };
    }
    match state {
        State::Running(server) => Ok(Some(server)),
        _ => Ok(None),
    }
}

/// Whether an error is for want of a resource that may come back.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM | libc::ENOBUFS)
    )
}

/// Says once on stderr that workers are forked from the program, unless
/// [`QUIET`] is set.
fn warn_unavailable(error: &io::Error) {
    if is_set(QUIET) {
        return;
    }
    eprintln!(
        "forkmap: could not start the fork server ({error}); workers are forked from this \
         program instead. A lock that another thread of the program holds at the moment of a \
         fork (stdout's, a logger's, one inside a C library) stays locked in the worker, and a \
         task that takes it hangs. Set {QUIET}=1 to silence this warning."
    );
}

/// Asks the fork server for a worker with rings of `ring_size` bytes, starting the server if it is not
/// running, or a new one if it has died. `None` when no server can be
/// started (the caller forks the worker itself); an error when the server
/// could not fork (the server lives on).
pub(crate) fn spawn(ring_size: usize) -> Option<io::Result<Forked>> {
    let mut state = state();
    for _ in 0..2 {
        let server = match current(&mut state) {
            Ok(server) => server?,
            Err(e) => return Some(Err(e)),
        };
        match request_spawn(server, ring_size) {
            Ok(Ok(forked)) => return Some(Ok(forked)),
            Ok(Err(refused)) => return Some(Err(refused)),
            // The server is gone: reap it, and start another.
            Err(_) => {
                let _ = server.process.kill();
                let _ = server.process.wait();
                *state = State::NotStarted;
            }
        }
    }
    Some(Err(io::Error::other(
        "the fork server ended as soon as it was started",
    )))
}

/// One spawn request: `Err` when the server could not be reached, `Ok(Err)`
/// when it could not fork.
fn request_spawn(server: &Server, ring_size: usize) -> io::Result<io::Result<Forked>> {
    let mut request = [0; 16];
    request[0] = SPAWN;
    request[8..].copy_from_slice(&(ring_size as u64).to_le_bytes());
    // The worker starts in this process's current directory, whichever it
    // is now: the server's is the program's when it started. Where it cannot
    // be opened, the worker starts in the server's.
    let cwd = nix::fcntl::open(
        ".",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    let cwd: Vec<RawFd> = cwd.iter().map(AsRawFd::as_raw_fd).collect();
    let (reply, fds) = exchange(server, &request, &cwd)?;
    let pid = i32::from_le_bytes(reply[..4].try_into().expect("four bytes"));
    if pid <= 0 {
        let error = io::Error::from_raw_os_error(-pid);
        return Ok(Err(io::Error::new(
            error.kind(),
            format!("the fork server could not fork a worker: {error}"),
        )));
    }
    let pid = Pid::from_raw(pid);
    // Five descriptors come with a worker; without them all (this process
    // is out of descriptors: the kernel drops what does not fit), it is of
    // no use.
    let Ok([file, socket, down, up, bell]) = <[OwnedFd; 5]>::try_from(fds) else {
        reap_from(server, pid, true)?;
        return Ok(Err(io::Error::other(
            "a worker came without its descriptors (is this process out of descriptors?)",
        )));
    };
    let board = match SharedBoard::open(&file) {
        Ok(board) => board,
        Err(e) => {
            reap_from(server, pid, true)?;
            return Ok(Err(e));
        }
    };
    Ok(Ok(Forked {
        pid,
        link: PoolFiles::from_fds([socket, down, up, bell]),
        board,
        generation: server.generation,
    }))
}

/// Asks the fork server of `generation` to reap one of its workers, killing
/// it first when `kill` is set. A worker of a server that has ended died
/// with it, and is nobody's to reap any more.
pub(crate) fn reap(pid: Pid, kill: bool, generation: u64) -> Reaped {
    let mut state = state();
    let State::Running(server) = &mut *state else {
        return Reaped::UNKNOWN;
    };
    if server.generation != generation || server.owner != unistd::getpid() {
        return Reaped::UNKNOWN;
    }
    match reap_from(server, pid, kill) {
        Ok(reaped) => reaped,
        // Gone or stuck: it is killed (its workers die with it), and the
        // next spawn starts another.
        Err(_) => {
            let _ = server.process.kill();
            let _ = server.process.wait();
            *state = State::NotStarted;
            Reaped::UNKNOWN
        }
    }
}

/// Asks `server` to reap `pid`; `Err` when it could not be reached.
fn reap_from(server: &Server, pid: Pid, kill: bool) -> io::Result<Reaped> {
    let mut request = [0; 16];
    request[0] = REAP;
    request[1] = u8::from(kill);
    request[4..8].copy_from_slice(&pid.as_raw().to_le_bytes());
    let (reply, _) = exchange(server, &request, &[])?;
    Ok(decode_reaped(&reply))
}

/// Runs the program's binary again as a fork server, and waits for its
/// hello: the same build as this program.
fn launch(generation: u64) -> io::Result<Server> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    process::flush_standard_streams();
    let mut process = Command::new("/proc/self/exe")
        .arg0("forkmap-server")
        .env(MARKER, VERSION)
        // The server's standard input is its socket (it swaps it for
        // /dev/null at once); it prints where the program does.
        .stdin(Stdio::from(theirs))
        // Terminal signals (Ctrl-C) go to the program's process group; the
        // program decides, and the server follows it when it ends.
        .process_group(0)
        .spawn()?;
    let hello = {
        let mut fds = [PollFd::new(ours.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(HELLO_WITHIN).unwrap_or(PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(1) => receive(ours.as_raw_fd()).and_then(|hello| {
                hello.ok_or_else(|| io::Error::other("the fork server ended before it started"))
            }),
            Ok(_) => Err(io::Error::other(format!(
                "the fork server did not start within {HELLO_WITHIN:?}"
            ))),
            Err(e) => Err(e.into()),
        }
    };
    let checked = hello.and_then(|(hello, _)| check_hello(&hello));
    if let Err(e) = checked {
        let _ = process.kill();
        let _ = process.wait();
        return Err(e);
    }
    Ok(Server {
        control: ours,
        process,
        owner: unistd::getpid(),
        generation,
    })
}

/// Checks a server's hello: the protocol, and the same build as this
/// program (a program whose binary was replaced while it ran would start
/// another build, whose code offsets mean other functions).
fn check_hello(hello: &Message) -> io::Result<()> {
    if hello[..4] != HELLO {
        return Err(io::Error::other(
            "the fork server's hello does not check out",
        ));
    }
    let theirs = u64::from_le_bytes(hello[8..].try_into().expect("eight bytes"));
    if theirs != code::build_identity() {
        return Err(io::Error::other(
            "the fork server runs another build of this program (was its binary replaced \
             while it ran?)",
        ));
    }
    Ok(())
}

fn hello() -> Message {
    let mut hello = [0; 16];
    hello[..4].copy_from_slice(&HELLO);
    hello[8..].copy_from_slice(&code::build_identity().to_le_bytes());
    hello
}

/// Runs before `main` in every run of the program (the loader calls the
/// functions in `.init_array`). In a run that [`launch`] started, it serves
/// forks and never returns; in any other, it returns at once.
extern "C" fn serve_if_asked() {
    if std::env::var_os(MARKER).as_deref() != Some(OsStr::new(VERSION)) {
        return;
    }
    // Workers, and what tasks start, must not think they are servers. The
    // loader calls this before `main`, and before the program can have
    // started a thread: nothing else reads the environment while it changes.
    std::env::remove_var(MARKER);
    // Standard input is the socket to the program, unless the variable was
    // set by someone else: then this is not a server, and `main` runs.
    let is_socket = matches!(
        getsockopt(&std::io::stdin(), sockopt::SockType),
        Ok(SockType::SeqPacket)
    );
    if !is_socket {
        return;
    }
    let code = match become_server() {
        Ok((control, program)) => serve(&control, program.as_ref()),
        Err(_) => 1,
    };
    process::exit(code)
}

/// The loader runs [`serve_if_asked`] before `main`.
#[used]
#[link_section = ".init_array"]
static SERVE_IF_ASKED: extern "C" fn() = serve_if_asked;

/// Moves the socket off standard input (which becomes `/dev/null`), closes
/// every other descriptor the program's binary was started with (but
/// standard output and error, which become `/dev/null` where closed), names
/// the process, and says hello. Returns the socket, and a pidfd of the
/// program where the system has them.
fn become_server() -> io::Result<(OwnedFd, Option<OwnedFd>)> {
    let control_fd = fcntl(std::io::stdin(), FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `fcntl` has just made this descriptor; nothing else owns it.
    let control = unsafe { OwnedFd::from_raw_fd(control_fd) };
    process::close_all_but(control.as_raw_fd());
    // Standard output and error stay the program's. Where the program had
    // closed them, `/dev/null` takes their place: the first descriptors
    // this server makes (a worker's link) would otherwise get their
    // numbers, and what a task prints would go into its link.
    let closed = [
        fcntl(std::io::stdout(), FcntlArg::F_GETFD).is_err(),
        fcntl(std::io::stderr(), FcntlArg::F_GETFD).is_err(),
    ];
    for (number, closed) in [(1, closed[0]), (2, closed[1])] {
        if closed {
            // Standard input is open: a file opened now takes the lowest
            // free number, 1 or 2, and keeps it for good.
            let sink = std::fs::File::options().write(true).open("/dev/null")?;
            if sink.into_raw_fd() != number {
                return Err(io::Error::other(
                    "standard output or error could not be reopened",
                ));
            }
        }
    }
    let null = std::fs::File::open("/dev/null")?;
    unistd::dup2_stdin(&null)?;
    process::set_name(c"forkmap-server");
    process::shield();
    rust_runtime::set_up();
    // The program, this process's parent; if it has already ended, the
    // parent is another process, whose end the socket's makes moot.
    let program = process::pidfd_open(unistd::getppid()).ok();
    send(control.as_raw_fd(), &hello(), &[])?;
    Ok((control, program))
}

/// The server's loop: it ends when the program's end of `control` closes,
/// or when the program ends (its `program` pidfd polls readable), even if a
/// process the program forked keeps a copy of that end open: such a copy
/// cannot use the server.
fn serve(control: &OwnedFd, program: Option<&OwnedFd>) -> i32 {
    let Some(&body) = WORKER_BODY.first() else {
        return 1;
    };
    // The workers forked and not yet reaped: killed, with what their tasks
    // started, when the server ends. Most die with it anyway, but a task
    // that changes its credentials loses its parent-death signal.
    let mut forked = Vec::new();
    loop {
        if program.is_some_and(|program| ended_first(program, control)) {
            break;
        }
        let request = match receive(control.as_raw_fd()) {
            Ok(Some(received)) => received,
            _ => break,
        };
        let (request, passed) = request;
        let sent = match request[0] {
            SPAWN => {
                match fork_for_parent(control, program, body, ring_size(&request), passed.first()) {
                    Ok((pid, link, file)) => {
                        forked.push(pid);
                        let mut reply = [0; 16];
                        reply[..4].copy_from_slice(&pid.as_raw().to_le_bytes());
                        let [socket, down, up, bell] = link.raw_fds();
                        let fds = [file.as_raw_fd(), socket, down, up, bell];
                        send(control.as_raw_fd(), &reply, &fds)
                    }
                    // The program learns why; the server serves on.
                    Err(e) => {
                        let mut reply = [0; 16];
                        let errno = e.raw_os_error().unwrap_or(nix::libc::EIO);
                        reply[..4].copy_from_slice(&(-errno).to_le_bytes());
                        send(control.as_raw_fd(), &reply, &[])
                    }
                }
            }
            REAP => {
                let pid = Pid::from_raw(i32::from_le_bytes(
                    request[4..8].try_into().expect("four bytes"),
                ));
                let reaped = process::reap(pid, request[1] != 0);
                forked.retain(|&other| other != pid);
                send(control.as_raw_fd(), &encode_reaped(reaped), &[])
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    // Not reaped, so each pid is still its worker's, and its group's id.
    for pid in forked {
        process::kill_group(pid);
    }
    0
}

/// Waits until `control` has a request or has closed, or `program` has
/// ended: true in the last case.
fn ended_first(program: &OwnedFd, control: &OwnedFd) -> bool {
    loop {
        let mut fds = [
            PollFd::new(program.as_fd(), PollFlags::POLLIN),
            PollFd::new(control.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => return fds[0].any().unwrap_or(false),
        }
    }
}

/// The ring size a spawn request asks for.
fn ring_size(request: &Message) -> usize {
    let size = u64::from_le_bytes(request[8..].try_into().expect("eight bytes"));
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// Forks a worker with rings of `ring_size` bytes for the program: its
/// pid, the pool's side of its link, and its board's memory file. The
/// server keeps none of them once it has sent them; the worker keeps none
/// of the server's (`control`, the `program`'s pidfd).
fn fork_for_parent(
    control: &OwnedFd,
    program: Option<&OwnedFd>,
    body: WorkerBody,
    ring_size: usize,
    cwd: Option<&OwnedFd>,
) -> io::Result<(Pid, PoolFiles, OwnedFd)> {
    let link = NewLink::new(ring_size)?;
    let (board, file) = SharedBoard::create_file()?;
    let [socket, down, up, bell] = link.pool.raw_fds();
    let close: Vec<RawFd> = [
        control.as_raw_fd(),
        file.as_raw_fd(),
        socket,
        down,
        up,
        bell,
    ]
    .into_iter()
    .chain(program.map(AsRawFd::as_raw_fd))
    .collect();
    let cwd = cwd.map(AsRawFd::as_raw_fd);
    let (pid, _) = process::fork_worker(&close, cwd, &board, body, None, link.worker)?;
    Ok((pid, link.pool, file))
}

/// Sends a request to `server`, with descriptors `fds`, and waits for its
/// reply and the descriptors it carries, for at most [`ANSWER_WITHIN`]. A server that is slow to
/// answer is sent SIGCONT every [`NUDGE_EVERY`]: one that a task stopped
/// (with SIGSTOP, which it cannot ignore) goes on, and nothing is lost.
fn exchange(
    server: &Server,
    request: &Message,
    fds: &[RawFd],
) -> io::Result<(Message, Vec<OwnedFd>)> {
    let control = server.control.as_fd();
    send(control.as_raw_fd(), request, fds)?;
    let deadline = std::time::Instant::now() + ANSWER_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the fork server did not answer",
            ));
        }
        // Woken by a signal, it finds nothing ready, and waits again.
        if super::poll(&[(control, false)], Some(left.min(NUDGE_EVERY)))?[0].readable {
            break;
        }
        let pid = Pid::from_raw(server.process.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    }
    receive(control.as_raw_fd())?.ok_or_else(|| io::Error::other("the fork server has ended"))
}

fn send(socket: RawFd, message: &Message, fds: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket,
        &[IoSlice::new(message)],
        cmsgs,
        // Without it, a program that restored SIGPIPE's default action
        // would be killed by a write to a server that is gone.
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Receives one message and the descriptors it carries; `None` when the
/// other end has closed. The descriptors are those the kernel could install:
/// fewer than were sent when this process is out of descriptors (which
/// `nix`'s `recvmsg` reports as an error, losing the ones it did install).
fn receive(socket: RawFd) -> io::Result<Option<(Message, Vec<OwnedFd>)>> {
    let mut message = [0u8; 16];
    // Room for the five descriptors a reply carries, aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: message.as_mut_ptr().cast(),
        iov_len: message.len(),
    };
    // SAFETY: a zeroed `msghdr` is valid (no name, no buffers); the fields
    // set below point at `iov` and `control`, which outlive the call.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    let len = loop {
        // SAFETY: `header` describes `message` and `control`, both writable
        // and as long as it says.
        let got = unsafe { libc::recvmsg(socket, &mut header, libc::MSG_CMSG_CLOEXEC) };
        if got >= 0 {
            break got as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: `header` is as `recvmsg` left it: the `CMSG_*` helpers walk the
    // control messages it wrote within `control`, and an `SCM_RIGHTS`
    // message holds `(cmsg_len - CMSG_LEN(0)) / 4` descriptors that the
    // kernel has just installed in this process, which nothing else owns.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    match len {
        0 => Ok(None),
        16 => Ok(Some((message, fds))),
        _ => Err(io::Error::other(
            "a fork server message had the wrong length",
        )),
    }
}

fn encode_reaped(Reaped { death, lingered }: Reaped) -> Message {
    let (kind, value) = match death {
        Death::Exit(code) => (0, code),
        Death::Signal(signal) => (1, signal),
        Death::Unknown => (2, 0),
    };
    let mut reply = [0; 16];
    reply[0] = kind;
    reply[1] = u8::from(lingered);
    reply[4..8].copy_from_slice(&value.to_le_bytes());
    reply
}

fn decode_reaped(reply: &Message) -> Reaped {
    let value = i32::from_le_bytes(reply[4..8].try_into().expect("four bytes"));
    let death = match reply[0] {
        0 => Death::Exit(value),
        1 => Death::Signal(value),
        _ => Death::Unknown,
    };
    Reaped {
        death,
        lingered: reply[1] != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_worker_travels_whole_from_the_server() {
        for death in [
            Death::Exit(0),
            Death::Exit(-3),
            Death::Signal(9),
            Death::Unknown,
        ] {
            for lingered in [false, true] {
                let reaped = Reaped { death, lingered };
                assert_eq!(decode_reaped(&encode_reaped(reaped)), reaped);
            }
        }
    }

    #[test]
    fn a_hello_of_this_build_checks_out_and_another_builds_does_not() {
        assert!(check_hello(&hello()).is_ok());
        let mut other = hello();
        other[8] ^= 1;
        let error = check_hello(&other).unwrap_err();
        assert!(error.to_string().contains("another build"), "{error}");
        let mut garbled = hello();
        garbled[0] = b'x';
        assert!(check_hello(&garbled).is_err());
    }
}
