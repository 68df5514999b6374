//! A bell: an eventfd that a worker rings to wake its pool's dispatcher from
//! `poll`, once it has sent a reply while the dispatcher sleeps.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

/// One worker's bell; both sides hold the same eventfd.
#[derive(Debug)]
pub(crate) struct Bell {
    eventfd: OwnedFd,
}

impl Bell {
    /// A new bell, not rung; its descriptor closes on exec.
    pub(crate) fn new() -> io::Result<Self> {
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Bell {
            eventfd: eventfd.into(),
        })
    }

    /// The bell of a descriptor made by [`Bell::new`], sent by another
    /// process.
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Bell { eventfd: fd }
    }

    /// Rings it.
    pub(crate) fn ring(&self) {
        let _ = nix::unistd::write(&self.eventfd, &1u64.to_ne_bytes());
    }

    /// Silences it after it was heard.
    pub(crate) fn silence(&self) {
        let _ = nix::unistd::read(&self.eventfd, &mut [0; 8]);
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.eventfd.as_fd()
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.eventfd.as_fd().as_raw_fd()
    }
}
