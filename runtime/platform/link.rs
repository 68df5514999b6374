//! What connects a pool and one worker: a ring each way in shared memory,
//! through which frames go; a socket pair for frames too large for a ring
//! (the ring carries an empty message in their place, to keep the order)
//! and whose closing tells each side that the other is gone; and the
//! worker's bell, which it rings after a reply while the dispatcher sleeps.
//!
//! A link is made where the worker starts: by the fork server, which sends
//! the pool its side as descriptors, or by the pool's own process (a worker
//! it forks itself, or a worker thread).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recv, MsgFlags};

use crate::platform::bell::{self, Bell, Ringer};
use crate::platform::identity::Identity;
use crate::platform::ring::Ring;
use crate::platform::Private;

/// The default size of each of a worker's two rings: 1 MiB, so that a
/// frame of up to 512 KiB goes through shared memory. Only the pages used
/// become resident.
pub(crate) const DEFAULT_RING_SIZE: usize = 1 << 20;

/// The smallest and largest ring sizes a pool may ask for (powers of two).
pub(crate) const RING_SIZES: std::ops::RangeInclusive<usize> = (4 << 10)..=(1 << 30);

/// A worker's side of its link.
#[derive(Debug)]
pub(crate) struct WorkerEnds {
    /// Frames too large for a ring, both ways, in order with the rings.
    pub(crate) socket: UnixStream,
    /// What the socket is: a task may have put another file in its place.
    pub(crate) socket_identity: Identity,
    /// From the pool.
    pub(crate) down: Ring,
    /// To the pool.
    pub(crate) up: Ring,
    pub(crate) bell: Ringer,
}

/// The pool's side of a worker's link. Its descriptors are the pool's own:
/// every worker forked after it closes them, and its rings are not mapped
/// in any process forked from this one.
#[derive(Debug)]
pub(crate) struct PoolEnds {
    /// Non-blocking.
    pub(crate) socket: Private,
    pub(crate) down: Ring,
    pub(crate) up: Ring,
    pub(crate) bell: Private<Bell>,
}

/// A new link: the worker's side, and what the pool's side is made of (the
/// other end of the socket, the rings' memory files, and the bell's
/// descriptor), to send to the pool or open here.
pub(crate) struct NewLink {
    pub(crate) worker: WorkerEnds,
    pub(crate) pool: PoolFiles,
}

/// The descriptors of a pool's side of a link.
pub(crate) struct PoolFiles {
    pub(crate) socket: UnixStream,
    pub(crate) down: OwnedFd,
    pub(crate) up: OwnedFd,
    pub(crate) bell: OwnedFd,
}

impl NewLink {
    /// A new link with rings of `ring_size` bytes each (a power of two in
    /// [`RING_SIZES`]).
    pub(crate) fn new(ring_size: usize) -> io::Result<Self> {
        let (socket, worker_socket) = UnixStream::pair()?;
        let (down, down_file) = Ring::create(ring_size)?;
        let (up, up_file) = Ring::create(ring_size)?;
        let (bell, pool_bell) = bell::new()?;
        let socket_identity =
            Identity::of(worker_socket.as_fd()).ok_or(io::ErrorKind::InvalidInput)?;
        Ok(NewLink {
            worker: WorkerEnds {
                socket: worker_socket,
                socket_identity,
                down,
                up,
                bell,
            },
            pool: PoolFiles {
                socket,
                down: down_file,
                up: up_file,
                bell: pool_bell,
            },
        })
    }
}

impl PoolFiles {
    /// The descriptors, in the order [`PoolFiles::from_fds`] takes them.
    pub(crate) fn raw_fds(&self) -> [RawFd; 4] {
        [
            self.socket.as_raw_fd(),
            self.down.as_raw_fd(),
            self.up.as_raw_fd(),
            self.bell.as_raw_fd(),
        ]
    }

    /// The descriptors as [`PoolFiles::raw_fds`] lists them, received from
    /// another process.
    pub(crate) fn from_fds([socket, down, up, bell]: [OwnedFd; 4]) -> Self {
        PoolFiles {
            socket: UnixStream::from(socket),
            down,
            up,
            bell,
        }
    }

    /// Opens the pool's side in this process, registering its descriptors
    /// in `ours` (the locked list of the pool's descriptors). A file that
    /// is not a ring is an error.
    pub(crate) fn open(self, ours: &mut Vec<RawFd>) -> io::Result<PoolEnds> {
        let PoolFiles {
            socket,
            down,
            up,
            bell,
        } = self;
        socket.set_nonblocking(true)?;
        let down = Ring::open(&down)?;
        let up = Ring::open(&up)?;
        down.keep_from_children();
        up.keep_from_children();
        Ok(PoolEnds {
            socket: Private::register(ours, socket),
            down,
            up,
            bell: Private::register(ours, Bell::from_fd(bell)),
        })
    }
}

/// Whether a worker's socket says that its pool is gone: its other end has
/// closed (it reads end-of-file; bytes waiting are left where they are), or
/// it is not the socket `identity` any more (a task closed it, or put
/// another file in its place).
pub(crate) fn pool_gone(socket: &UnixStream, identity: Identity) -> bool {
    if !identity.is(socket.as_fd()) {
        return true;
    }
    let mut byte = [0];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    matches!(recv(socket.as_fd().as_raw_fd(), &mut byte, flags), Ok(0))
}
