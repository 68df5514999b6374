//! What a descriptor refers to. A task can close any descriptor of its
//! worker and open another file, which then takes the same number: a worker
//! that wrote to its bell or its socket by number would write into the
//! task's file, and one that read would consume it. So the worker looks at
//! what the number refers to before it touches it.

use std::os::fd::BorrowedFd;

use nix::sys::stat::fstat;

/// The file a descriptor referred to when it was made: its device and
/// inode, which no other open file shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// What `fd` refers to now; `None` if it is not open.
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Option<Identity> {
        let stat = fstat(fd).ok()?;
        Some(Identity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// Whether `fd` still refers to this file.
    pub(crate) fn is(self, fd: BorrowedFd<'_>) -> bool {
        Identity::of(fd) == Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn another_file_on_the_same_number_is_not_the_same() {
        let (read, mut write) = nix::unistd::pipe().unwrap();
        let identity = Identity::of(write.as_fd()).unwrap();
        assert!(identity.is(write.as_fd()));
        assert_ne!(Identity::of(read.as_fd()), None);
        // Put another file in the pipe's place, on its number.
        let other = std::fs::File::open("/dev/null").unwrap();
        nix::unistd::dup2(&other, &mut write).unwrap();
        assert!(!identity.is(write.as_fd()), "/dev/null taken for the pipe");
    }
}
