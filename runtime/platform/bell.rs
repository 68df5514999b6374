//! A worker's bell: a pipe. The worker holds its write end, the [`Ringer`],
//! and writes a byte to it after a reply while its pool's dispatcher sleeps;
//! the dispatcher polls the read end, the [`Bell`].
//!
//! A pipe rather than an eventfd, because a task can close any descriptor
//! of its worker, or put another file in its place: a pipe's read end then
//! says that its writer is gone, and the pool stops waiting for a bell
//! that cannot ring.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::platform::identity::Identity;

/// The worker's end of its bell.
#[derive(Debug)]
pub(crate) struct Ringer {
    pipe: OwnedFd,
    /// The pipe, which a task may have put another file in place of.
    identity: Identity,
}

/// The dispatcher's end of a worker's bell.
#[derive(Debug)]
pub(crate) struct Bell {
    pipe: OwnedFd,
}

/// A new bell, not rung: the worker's end, and the descriptor of the
/// dispatcher's (for [`Bell::from_fd`], here or in another process). Both
/// are non-blocking and close on exec.
pub(crate) fn new() -> io::Result<(Ringer, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let identity = Identity::of(write.as_fd()).ok_or(Errno::EBADF)?;
    Ok((
        Ringer {
            pipe: write,
            identity,
        },
        read,
    ))
}

impl Ringer {
    /// Rings the bell. A bell rung and not yet heard (a full pipe) stays
    /// rung; one whose descriptor a task closed, or put another file in
    /// the place of, rings nothing (and writes nothing into that file).
    pub(crate) fn ring(&self) {
        if self.identity.is(self.pipe.as_fd()) {
            let _ = nix::unistd::write(&self.pipe, &[1]);
        }
    }
}

impl Bell {
    /// The bell of a descriptor made by [`new`].
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Bell { pipe: fd }
    }

    /// Silences it after it was heard. `false` when it can ring no more:
    /// the worker's end has closed.
    pub(crate) fn silence(&self) -> bool {
        let mut rings = [0; 64];
        loop {
            match nix::unistd::read(&self.pipe, &mut rings) {
                Ok(0) => return false,
                Ok(n) if n == rings.len() => continue,
                Ok(_) | Err(Errno::EAGAIN) => return true,
                Err(Errno::EINTR) => continue,
                // Not a pipe's error; the bell is no use.
                Err(_) => return false,
            }
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

impl AsRawFd for Ringer {
    fn as_raw_fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bell_rung_is_heard_once_and_a_bell_without_ringer_says_so() {
        let (ringer, fd) = new().unwrap();
        let bell = Bell::from_fd(fd);
        for _ in 0..100 {
            ringer.ring();
        }
        assert!(bell.silence(), "a bell with its ringer rings on");
        let mut quiet = [0];
        assert_eq!(
            nix::unistd::read(&bell.pipe, &mut quiet),
            Err(Errno::EAGAIN),
            "silenced, it holds no ring"
        );
        drop(ringer);
        assert!(
            !bell.silence(),
            "a bell whose ringer closed can ring no more"
        );
    }
}
