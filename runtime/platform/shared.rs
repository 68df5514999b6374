//! Memory shared between the parent and one worker: the worker's [`Board`].

use std::io;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::fstat;
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
        // The file can go: the mapping keeps its memory.
        Self::create_file().map(|(board, _)| board)
    }

    /// A zeroed board in a memory file, and the file, for sending to another
    /// process, which maps it with [`SharedBoard::open`]. The file is sealed
    /// against changes of size: a task that truncated it (through
    /// `/proc/self/map_files`) would have every process that maps it die of
    /// SIGBUS at its next look.
    pub(crate) fn create_file() -> io::Result<(Self, OwnedFd)> {
        let file = memfd_create(
            c"forkmap-board",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        ftruncate(&file, LEN.get() as i64)?;
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        let board = Self::open(&file)?;
        Ok((board, file))
    }

    /// Maps the board in a memory file made by [`SharedBoard::create_file`];
    /// a file not sealed against shrinking, or shorter than a board, is an
    /// error.
    pub(crate) fn open(file: impl AsFd) -> io::Result<Self> {
        let file = file.as_fd();
        let seals = SealFlag::from_bits_retain(fcntl(file, FcntlArg::F_GET_SEALS)?);
        let len = fstat(file)?.st_size;
        if !seals.contains(SealFlag::F_SEAL_SHRINK) || len < LEN.get() as i64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a worker's board came in a file that is not a sealed board",
            ));
        }
        // SAFETY: a new shared mapping of a file of at least `LEN` bytes,
        // sealed against shrinking (so no access within the mapping faults),
        // at an address the kernel chooses: it overlaps no other memory. A
        // memory file starts zeroed, and any bytes are a valid `Board`
        // (atomics only).
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
