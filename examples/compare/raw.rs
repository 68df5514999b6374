//! The machine's own limits, measured with no library in between: a forked
//! child echoing batches over pipes, an 8-byte ping-pong over pipes, forking
//! eight ready children, and memcpy (`raw_shm` has the echo and the
//! ping-pong through shared memory). Every fork of the comparison is made
//! here.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe, ForkResult, Pid};

use crate::median;

/// Two pipes: one from the parent to the child, one back.
struct Pipes {
    to: File,
    from: File,
}

/// Runs `child` on `state` in a forked child, which then leaves with
/// `_exit`, and `parent` on `state` and the child's pid here; then waits for
/// the child and returns what `parent` returns.
///
/// # Safety
///
/// `child` runs in a copy of this process that has only the thread that
/// forked: it must take no lock and allocate nothing (another thread may
/// have held the lock at the fork, and kept it in the copy), and must not
/// panic.
pub(crate) unsafe fn in_child<S, T>(
    state: S,
    child: impl FnOnce(S),
    parent: impl FnOnce(S, Pid) -> T,
) -> T {
    // SAFETY: the child runs only `child`, which takes no lock, allocates
    // nothing and does not panic (this function's contract), then leaves
    // with `_exit`, never returning here.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            child(state);
            // SAFETY: ends the child at once, without running the parent's
            // destructors or exit handlers.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            let out = parent(state, child);
            let _ = waitpid(child, None);
            out
        }
    }
}

/// Runs `child` in a forked child on its ends of two pipes, then waits for
/// it; returns what `parent` returns.
fn with_child<T>(child: fn(Pipes), parent: impl FnOnce(Pipes) -> T) -> T {
    let (down_read, down_write) = pipe().expect("a pipe");
    let (up_read, up_write) = pipe().expect("a pipe");
    let ends = ((down_read, up_write), (down_write, up_read));
    // SAFETY: the child closes the parent's ends, then only reads and
    // writes its pipes (`child` is one of this module's echoes, which do
    // nothing else and never panic): it takes no lock and allocates nothing.
    unsafe {
        in_child(
            ends,
            |((from, to), parents)| {
                drop(parents);
                child(Pipes {
                    to: File::from(to),
                    from: File::from(from),
                })
            },
            |(childs, (to, from)), _| {
                drop(childs);
                parent(Pipes {
                    to: File::from(to),
                    from: File::from(from),
                })
            },
        )
    }
}

/// Items per second through a forked child that echoes batches of 1,024
/// `u64`: one thread of the parent writes while another reads.
pub(crate) fn batched_echo(batches: usize) -> f64 {
    fn echo(mut pipes: Pipes) {
        let mut batch = [0u8; 8 * 1024];
        while pipes.from.read_exact(&mut batch).is_ok() {
            if pipes.to.write_all(&batch).is_err() {
                return;
            }
        }
    }
    with_child(echo, |pipes| {
        let Pipes { mut to, mut from } = pipes;
        let started = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut batch = [0u8; 8 * 1024];
                for i in 0..batches {
                    batch[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    to.write_all(&batch).expect("write a batch");
                }
            });
            let mut batch = [0u8; 8 * 1024];
            for _ in 0..batches {
                from.read_exact(&mut batch).expect("read a batch");
            }
        });
        (batches * 1024) as f64 / started.elapsed().as_secs_f64()
    })
}

/// The median round trip of 8 bytes to a forked child and back.
pub(crate) fn ping_pong(rounds: usize) -> Duration {
    fn echo(mut pipes: Pipes) {
        let mut word = [0u8; 8];
        while pipes.from.read_exact(&mut word).is_ok() {
            if pipes.to.write_all(&word).is_err() {
                return;
            }
        }
    }
    with_child(echo, |mut pipes| {
        let mut word = [0u8; 8];
        let mut times = Vec::with_capacity(rounds);
        for i in 0..rounds + rounds / 10 {
            let started = Instant::now();
            pipes
                .to
                .write_all(&(i as u64).to_le_bytes())
                .expect("write");
            pipes.from.read_exact(&mut word).expect("read");
            if i >= rounds / 10 {
                times.push(started.elapsed());
            }
        }
        median(&mut times)
    })
}

/// The median time to fork eight children and hear from each that it is
/// ready.
pub(crate) fn fork_eight_ready(rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut children: Vec<(Pid, UnixStream)> = Vec::with_capacity(8);
        for _ in 0..8 {
            let (ours, mut theirs) = UnixStream::pair().expect("a socket pair");
            // SAFETY: the child writes one byte and leaves with `_exit`: it
            // takes no lock and allocates nothing.
            match unsafe { fork() }.expect("fork") {
                ForkResult::Child => {
                    drop(ours);
                    let _ = theirs.write_all(&[1]);
                    // SAFETY: ends the child at once, without running the
                    // parent's destructors or exit handlers.
                    unsafe { nix::libc::_exit(0) }
                }
                ForkResult::Parent { child } => children.push((child, ours)),
            }
        }
        for (_, channel) in &mut children {
            let mut ready = [0u8; 1];
            channel.read_exact(&mut ready).expect("ready");
        }
        times.push(started.elapsed());
        for (pid, channel) in children {
            drop(channel);
            let _ = waitpid(pid, None);
        }
    }
    median(&mut times)
}

/// Bytes per second of copying a buffer of `len` bytes within the process.
pub(crate) fn memcpy(len: usize) -> f64 {
    let from = vec![7u8; len];
    let mut to = vec![0u8; len];
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        to.copy_from_slice(std::hint::black_box(&from));
        times.push(started.elapsed());
        std::hint::black_box(&to);
    }
    len as f64 / median(&mut times).as_secs_f64()
}
