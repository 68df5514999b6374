//! Memory shared between the parent and one worker: the worker's [`Board`].

use std::io;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::unistd::ftruncate;

use crate::platform::board::Board;

/// The mapping's length: one page holds a board.
const LEN: NonZeroUsize = match NonZeroUsize::new(4096) {
    Some(len) => len,
    None => unreachable!(),
};

const _: () = assert!(std::mem::size_of::<Board>() <= LEN.get());

/// A [`Board`] in a shared mapping: a process forked after it was made
/// shares it, and so does a process that maps the same memory file.
#[derive(Debug)]
pub(crate) struct SharedBoard {
    page: NonNull<Board>,
}

// SAFETY: a `Board` is atomics only, so it may be used from any thread; the
// mapping is owned by this value and unmapped only when it drops.
unsafe impl Send for SharedBoard {}
// SAFETY: as above: every access goes through the board's atomics.
unsafe impl Sync for SharedBoard {}

impl SharedBoard {
    /// A zeroed board, shared with the processes forked from now on.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel overlaps no
        // other memory, so nothing existing is affected.
        let page = unsafe {
            mmap_anonymous(
                None,
                LEN,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedBoard { page: page.cast() })
    }

    /// A zeroed board in a memory file, and the file, for sending to another
    /// process, which maps it with [`SharedBoard::open`].
    pub(crate) fn create_file() -> io::Result<(Self, OwnedFd)> {
        let file = memfd_create(c"forkmap-board", MFdFlags::MFD_CLOEXEC)?;
        ftruncate(&file, LEN.get() as i64)?;
        let board = Self::open(&file)?;
        Ok((board, file))
    }

    /// Maps the board in a memory file made by [`SharedBoard::create_file`].
    pub(crate) fn open(file: impl AsFd) -> io::Result<Self> {
        // SAFETY: a new shared mapping of a file of `LEN` bytes, at an
        // address the kernel chooses: it overlaps no other memory. A memory
        // file starts zeroed, and all zero is a valid `Board`.
        let page = unsafe {
            mmap(
                None,
                LEN,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }?;
        Ok(SharedBoard { page: page.cast() })
    }
}

impl Deref for SharedBoard {
    type Target = Board;

    fn deref(&self) -> &Board {
        // SAFETY: the page is mapped readable and writable for as long as
        // `self` lives, is page-aligned (more than `Board` needs), starts
        // zeroed (a valid `Board`), and is only ever accessed through the
        // board's atomics, so a shared reference to it is sound even while
        // another process writes it.
        unsafe { self.page.as_ref() }
    }
}

impl Drop for SharedBoard {
    fn drop(&mut self) {
        // SAFETY: the page was mapped with length `LEN` by this value, and no
        // reference to it outlives `self` (`deref` borrows from `self`).
        let _ = unsafe { munmap(self.page.cast(), LEN.get()) };
    }
}
