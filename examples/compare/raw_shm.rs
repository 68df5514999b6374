//! The machine's limits through memory shared with a forked child, with no
//! library in between: a ping-pong of one 8-byte word, and an echo of
//! batches of 1,024 `u64` through two rings of slots. The memory is an
//! anonymous `MAP_SHARED` mapping made before the fork.
//!
//! A side that waits for the other spins on the other's count for a while,
//! yielding the core between rounds of polls (a 2-core machine has little
//! room to spare), then says that it sleeps and sleeps on the count's futex
//! (a shared one, since the two sides are two processes); the other side
//! makes the wake-up call only then.

use std::cell::UnsafeCell;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getppid, Pid};

use crate::median;
use crate::raw::in_child;

/// How long a waiter spins before it sleeps: as long as forkmap's
/// dispatcher does.
const SPIN: Duration = Duration::from_micros(50);

/// Polls of a count between two yields of the core while spinning.
const POLLS_PER_YIELD: u32 = 64;

/// How long a sleeper sleeps before it checks that the other side lives.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// `u64`s in a batch.
const BATCH: usize = 1024;

/// Batches a ring holds.
const SLOTS: u32 = 16;

/// A `T` in an anonymous `MAP_SHARED` mapping, every byte zero at first:
/// made before a fork, it is the same memory in the parent and the child.
struct Shared<T> {
    ptr: NonNull<T>,
}

impl<T> Shared<T> {
    /// A new mapping holding a zeroed `T`.
    ///
    /// # Safety
    ///
    /// A `T` whose bytes are all zero must be a valid `T`, and every use of
    /// it from two processes at once must be sound: atomics, or cells that a
    /// protocol gives to one side at a time.
    unsafe fn zeroed() -> Self {
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let len = NonZeroUsize::new(std::mem::size_of::<T>()).expect("a type with a size");
        // SAFETY: a new anonymous mapping at an address of the kernel's
        // choosing replaces none of this process's memory.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .expect("a shared mapping");
        Shared { ptr: ptr.cast() }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned (enough for `T`, checked in
        // `zeroed`), as long as a `T`, and mapped for as long as `self`,
        // which this borrow cannot outlive; its zero bytes are a valid `T`
        // (`zeroed`'s contract), and no `&mut` to it is ever made.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: `zeroed` mapped exactly this address and length, and no
        // reference into it outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), std::mem::size_of::<T>()) };
    }
}

/// Sleeps while `word` holds `expected`: until woken, interrupted, or
/// `timeout` has passed.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned `u32` for the whole call, which only
    // reads it; `timeout` lives on this stack until the call returns; the
    // other arguments are unused by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        )
    };
}

/// Wakes the one that sleeps on `word`, if any.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned `u32`; FUTEX_WAKE uses only its
    // address, to find the sleepers; the other arguments are unused by it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
}

/// The other side of a reference: what a long sleep checks.
#[derive(Debug, Clone, Copy)]
enum Other {
    /// The child, seen from the parent.
    Child(Pid),
    /// The parent, seen from the child.
    Parent(Pid),
}

impl Other {
    /// Panics (in the parent) or leaves (in the child) if the other side
    /// has ended.
    fn check(self) {
        match self {
            Other::Child(pid) => {
                let status = waitpid(pid, Some(WaitPidFlag::WNOHANG));
                assert!(
                    matches!(status, Ok(WaitStatus::StillAlive)),
                    "the child of a shared-memory reference ended: {status:?}"
                );
            }
            Other::Parent(pid) => {
                if getppid() != pid {
                    // SAFETY: ends the child at once, without running the
                    // parent's destructors or exit handlers.
                    unsafe { libc::_exit(1) }
                }
            }
        }
    }
}

/// A count that one side moves on and the other waits on, and the
/// waiter's word that it sleeps.
#[repr(C)]
struct Signal {
    count: AtomicU32,
    asleep: AtomicU32,
}

impl Signal {
    /// Moves the count to `count`, and wakes the waiter if it sleeps.
    fn set(&self, count: u32) {
        // Both sides store, then load the other's word, all sequentially
        // consistent: either the waiter sees the new count before it
        // sleeps, or this side sees that it sleeps.
        self.count.store(count, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) != 0 {
            futex_wake(&self.count);
        }
    }

    /// Waits until the count is no longer `seen`, and returns it.
    fn wait_past(&self, seen: u32, other: Other) -> u32 {
        let spin_end = Instant::now() + SPIN;
        loop {
            for _ in 0..POLLS_PER_YIELD {
                let count = self.count.load(Ordering::Acquire);
                if count != seen {
                    return count;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= spin_end {
                break;
            }
            std::thread::yield_now();
        }
        loop {
            self.asleep.store(1, Ordering::SeqCst);
            if self.count.load(Ordering::SeqCst) == seen {
                futex_wait(&self.count, seen, CHECK_EVERY);
            }
            self.asleep.store(0, Ordering::Relaxed);
            let count = self.count.load(Ordering::Acquire);
            if count != seen {
                return count;
            }
            other.check();
        }
    }
}

/// One way of the ping-pong: the word, and how many words were sent, on a
/// cache line of their own.
#[repr(C, align(64))]
struct Leg {
    word: AtomicU64,
    sent: Signal,
}

/// The ping-pong's shared memory.
#[repr(C)]
struct PingPong {
    ping: Leg,
    pong: Leg,
}

/// The median round trip of one 8-byte word to a forked child and back
/// through shared memory, over `rounds` rounds after a tenth as many to
/// warm up.
pub(crate) fn ping_pong(rounds: usize) -> Duration {
    let total = (rounds + rounds / 10) as u32;
    // SAFETY: a `PingPong` is atomics only, all of which may be zero.
    let shared = unsafe { Shared::<PingPong>::zeroed() };
    let parent = Pid::this();
    // SAFETY: the child only loads and stores atomics in the mapping, reads
    // the clock, yields and calls futexes: it takes no lock, allocates
    // nothing, and cannot panic.
    unsafe {
        in_child(
            &*shared,
            |shared| {
                let other = Other::Parent(parent);
                for i in 0..total {
                    shared.ping.sent.wait_past(i, other);
                    let word = shared.ping.word.load(Ordering::Relaxed);
                    shared.pong.word.store(word, Ordering::Relaxed);
                    shared.pong.sent.set(i + 1);
                }
            },
            |shared, child| {
                let other = Other::Child(child);
                let mut times = Vec::with_capacity(rounds);
                for i in 0..total {
                    let started = Instant::now();
                    shared.ping.word.store(u64::from(i) << 8, Ordering::Relaxed);
                    shared.ping.sent.set(i + 1);
                    shared.pong.sent.wait_past(i, other);
                    let word = shared.pong.word.load(Ordering::Relaxed);
                    if i >= total - rounds as u32 {
                        times.push(started.elapsed());
                    }
                    assert_eq!(word, u64::from(i) << 8, "the word came back changed");
                }
                median(&mut times)
            },
        )
    }
}

/// A batch's place in a ring.
#[repr(C, align(64))]
struct Slot(UnsafeCell<[u64; BATCH]>);

/// A signal on a cache line of its own.
#[repr(C, align(64))]
struct Line(Signal);

/// Batches from one side to the other: the writer moves `written` on after
/// it fills a slot, the reader moves `read` on after it empties one. The
/// slots from `read` up to `written` are the reader's, the others the
/// writer's.
#[repr(C)]
struct Ring {
    written: Line,
    read: Line,
    slots: [Slot; SLOTS as usize],
}

impl Ring {
    /// Fills the next slot with `fill` and passes it to the reader, once
    /// the reader has left one free.
    fn write(&self, other: Other, fill: impl FnOnce(&mut [u64; BATCH])) {
        // Only the writer moves `written` on.
        let written = self.written.0.count.load(Ordering::Relaxed);
        let mut read = self.read.0.count.load(Ordering::Acquire);
        while written.wrapping_sub(read) == SLOTS {
            read = self.read.0.wait_past(read, other);
        }
        let slot = &self.slots[(written % SLOTS) as usize];
        // SAFETY: fewer than `SLOTS` batches are unread, so slot `written` is
        // the writer's: the reader moved `read` past it (seen above with
        // Acquire) after its last use, and will not touch it again before
        // `written` moves past it, below.
        fill(unsafe { &mut *slot.0.get() });
        self.written.0.set(written.wrapping_add(1));
    }

    /// Whether a slot is free for the writer.
    fn writable(&self) -> bool {
        let written = self.written.0.count.load(Ordering::Relaxed);
        written.wrapping_sub(self.read.0.count.load(Ordering::Acquire)) < SLOTS
    }

    /// Whether a batch waits to be read.
    fn readable(&self) -> bool {
        self.written.0.count.load(Ordering::Acquire) != self.read.0.count.load(Ordering::Relaxed)
    }

    /// Waits until a batch is there, then gives it to `take` and passes its
    /// slot back to the writer.
    fn read(&self, other: Other, take: impl FnOnce(&[u64; BATCH])) {
        // Only the reader moves `read` on.
        let read = self.read.0.count.load(Ordering::Relaxed);
        let mut written = self.written.0.count.load(Ordering::Acquire);
        while written == read {
            written = self.written.0.wait_past(read, other);
        }
        let slot = &self.slots[(read % SLOTS) as usize];
        // SAFETY: `written` is past `read`, so slot `read` is the reader's:
        // the writer filled it before it moved `written` on (seen above with
        // Acquire), and will not touch it again before `read` moves past
        // it, below.
        take(unsafe { &*slot.0.get() });
        self.read.0.set(read.wrapping_add(1));
    }
}

/// The echo's shared memory: a ring to the child and one back.
#[repr(C)]
struct Echo {
    down: Ring,
    up: Ring,
}

/// Items per second through a forked child that copies each of `batches`
/// batches of 1,024 `u64` from a ring to another ring back. One thread of
/// the parent writes batches while there is room and reads the echoes that
/// came (faster here than a thread for each, which leaves the child a core
/// less).
pub(crate) fn ring_echo(batches: usize) -> f64 {
    // SAFETY: an `Echo` is atomics, which may be zero, and slots of `u64`s,
    // which the rings give to one side at a time.
    let shared = unsafe { Shared::<Echo>::zeroed() };
    let parent = Pid::this();
    // SAFETY: the child only moves batches between the rings: loads and
    // stores of the mapping, the clock, yields and futexes. It takes no
    // lock, allocates nothing, and cannot panic.
    unsafe {
        in_child(
            &*shared,
            |shared| {
                let other = Other::Parent(parent);
                for _ in 0..batches {
                    shared.down.read(other, |batch| {
                        shared.up.write(other, |slot| slot.copy_from_slice(batch));
                    });
                }
            },
            |shared, child| {
                let other = Other::Child(child);
                let mut batch: [u64; BATCH] = std::array::from_fn(|i| i as u64);
                let mut back = [0u64; BATCH];
                let started = Instant::now();
                let (mut sent, mut got) = (0, 0);
                while got < batches {
                    // Write while there is room, then read at least one
                    // echo, and more while they are there.
                    while sent < batches && shared.down.writable() {
                        batch[0] = sent as u64;
                        shared
                            .down
                            .write(other, |slot| slot.copy_from_slice(&batch));
                        sent += 1;
                    }
                    loop {
                        shared.up.read(other, |echoed| back.copy_from_slice(echoed));
                        assert_eq!(back[0], got as u64, "a batch came back out of order");
                        got += 1;
                        if got == batches || !shared.up.readable() {
                            break;
                        }
                    }
                }
                (batches * BATCH) as f64 / started.elapsed().as_secs_f64()
            },
        )
    }
}
