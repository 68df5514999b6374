//! The fork server: a process forked by [`start`] while the program has one
//! thread, which forks every worker from then on.
//!
//! A fork copies only the forking thread, and every lock the other threads
//! held stays locked in the copy for good. The server is forked before the
//! program has other threads and never starts one, so the workers it forks
//! hold no lock they cannot take.
//!
//! The parent talks to it over a sequenced-packet socket, one request and
//! one reply at a time: *spawn* (the reply carries the new worker's pid, and
//! the parent's end of its channel and its board's memory file as passed
//! descriptors) and *reap* (the reply says how the worker ended). Workers are
//! the server's children, so only it can reap them; the parent can still
//! kill them. The server ends when the parent's end of the socket closes,
//! which happens when the parent exits or dies, and its workers die with it.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::sys::signal::Signal;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::{self, ForkResult, Pid};

use super::process::{self, WorkerBody};
use super::Death;
use super::SharedBoard;

/// The parent's link to its fork server, once [`start`] has run.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

struct Server {
    control: OwnedFd,
}

fn server() -> MutexGuard<'static, Option<Server>> {
    SERVER.lock().unwrap_or_else(PoisonError::into_inner)
}

const SPAWN: u8 = 1;
const REAP: u8 = 2;

/// Every request and reply is this long.
type Message = [u8; 16];

/// Forks the fork server, unless it is running already; true if it was
/// started now. The caller makes sure this process has one thread.
pub(crate) fn start(body: WorkerBody) -> io::Result<bool> {
    let mut server = server();
    if server.is_some() {
        return Ok(false);
    }
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    process::flush_standard_streams();
    let parent = unistd::getpid();
    // SAFETY: the caller has made sure this process has no other thread, so
    // the child is a complete copy, with no lock held by a thread it lacks.
    // The child never returns from here: it serves requests until the
    // parent's end closes and leaves with `_exit`.
    match unsafe { unistd::fork() }? {
        ForkResult::Child => {
            drop(server);
            drop(ours);
            let armed = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok();
            if !armed || unistd::getppid() != parent {
                process::exit(1);
            }
            serve(&theirs, body)
        }
        ForkResult::Parent { .. } => {
            drop(theirs);
            *server = Some(Server { control: ours });
            Ok(true)
        }
    }
}

/// Whether workers come from the fork server.
pub(crate) fn running() -> bool {
    server().is_some()
}

/// Asks the fork server for a worker: its pid, the parent's end of its
/// channel (non-blocking), and its board. `None` when no server runs, and
/// from the moment the server is found gone (killed from outside, say): the
/// pool then forks its workers itself, as without `forkmap::init`.
pub(crate) fn spawn() -> Option<(Pid, UnixStream, SharedBoard)> {
    let mut server = server();
    let control = &server.as_ref()?.control;
    let spawned = (|| {
        let mut request = [0; 16];
        request[0] = SPAWN;
        let (reply, mut fds) = exchange(control, &request)?;
        let pid = i32::from_le_bytes(reply[..4].try_into().expect("four bytes"));
        if pid <= 0 {
            return Err(io::Error::from_raw_os_error(-pid));
        }
        let (Some(file), Some(channel), None) = (fds.pop(), fds.pop(), fds.pop()) else {
            return Err(io::Error::other(
                "the fork server sent a worker without its descriptors",
            ));
        };
        let board = SharedBoard::open(&file)?;
        Ok((Pid::from_raw(pid), UnixStream::from(channel), board))
    })();
    match spawned {
        Ok(spawned) => Some(spawned),
        Err(e) => {
            eprintln!(
                "forkmap: the fork server is gone ({e}); workers are forked from the program \
                 from now on"
            );
            *server = None;
            None
        }
    }
}

/// Asks the fork server to reap one of its workers, killing it first when
/// `kill` is set.
pub(crate) fn reap(pid: Pid, kill: bool) -> Death {
    let server = server();
    let Some(server) = server.as_ref() else {
        return Death::Unknown;
    };
    let mut request = [0; 16];
    request[0] = REAP;
    request[1] = u8::from(kill);
    request[4..8].copy_from_slice(&pid.as_raw().to_le_bytes());
    match exchange(&server.control, &request) {
        Ok((reply, _)) => decode_death(&reply),
        Err(_) => Death::Unknown,
    }
}

/// Sends a request and waits for its reply and the descriptors it carries.
fn exchange(control: &OwnedFd, request: &Message) -> io::Result<(Message, Vec<OwnedFd>)> {
    send(control.as_raw_fd(), request, &[])?;
    receive(control.as_raw_fd())?.ok_or_else(|| io::Error::other("the fork server has ended"))
}

/// The server's loop: it ends when the parent's end of `control` closes.
fn serve(control: &OwnedFd, body: WorkerBody) -> ! {
    loop {
        let request = match receive(control.as_raw_fd()) {
            Ok(Some((request, _))) => request,
            _ => process::exit(0),
        };
        let sent = match request[0] {
            SPAWN => match fork_for_parent(control, body) {
                Ok((pid, channel, file)) => {
                    let mut reply = [0; 16];
                    reply[..4].copy_from_slice(&pid.as_raw().to_le_bytes());
                    let fds = [channel.as_raw_fd(), file.as_raw_fd()];
                    send(control.as_raw_fd(), &reply, &fds)
                }
                Err(e) => {
                    let mut reply = [0; 16];
                    let errno = e.raw_os_error().unwrap_or(nix::libc::EIO);
                    reply[..4].copy_from_slice(&(-errno).to_le_bytes());
                    send(control.as_raw_fd(), &reply, &[])
                }
            },
            REAP => {
                let pid = i32::from_le_bytes(request[4..8].try_into().expect("four bytes"));
                let death = process::reap(Pid::from_raw(pid), request[1] != 0);
                send(control.as_raw_fd(), &encode_death(death), &[])
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            process::exit(0);
        }
    }
}

/// Forks a worker for the parent: its pid, the parent's end of its channel,
/// and its board's memory file. The server keeps none of them.
fn fork_for_parent(control: &OwnedFd, body: WorkerBody) -> io::Result<(Pid, UnixStream, OwnedFd)> {
    let (board, file) = SharedBoard::create_file()?;
    let close = [control.as_raw_fd(), file.as_raw_fd()];
    let (pid, channel, _) = process::fork_worker(&close, &board, body, None)?;
    Ok((pid, channel, file))
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
/// other end has closed.
fn receive(socket: RawFd) -> io::Result<Option<(Message, Vec<OwnedFd>)>> {
    let mut message = [0; 16];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let (len, fds) = {
        let mut iov = [IoSliceMut::new(&mut message)];
        let received = loop {
            match recvmsg::<()>(
                socket,
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        let mut fds = Vec::new();
        for cmsg in received.cmsgs()? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                // SAFETY: the kernel has just installed these descriptors in
                // this process for this message; nothing else owns them.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (received.bytes, fds)
    };
    match len {
        0 => Ok(None),
        16 => Ok(Some((message, fds))),
        _ => Err(io::Error::other(
            "a fork server message had the wrong length",
        )),
    }
}

fn encode_death(death: Death) -> Message {
    let (kind, value) = match death {
        Death::Exit(code) => (0, code),
        Death::Signal(signal) => (1, signal),
        Death::Unknown => (2, 0),
    };
    let mut reply = [0; 16];
    reply[0] = kind;
    reply[4..8].copy_from_slice(&value.to_le_bytes());
    reply
}

fn decode_death(reply: &Message) -> Death {
    let value = i32::from_le_bytes(reply[4..8].try_into().expect("four bytes"));
    match reply[0] {
        0 => Death::Exit(value),
        1 => Death::Signal(value),
        _ => Death::Unknown,
    }
}
