//! A message ring in shared memory: one producer process, one consumer
//! process, and no system call while neither has to sleep.
//!
//! A ring is a sealed memory file: a one-page header of atomics, then a data
//! area whose length (the capacity) is a power of two. The producer writes
//! each message as a record, an 8-byte record word (length and kind) then
//! the bytes, padded to 8, so every message lies contiguous in the area and
//! can be decoded in place; a message that does not fit before the area's
//! end is preceded by a wrap record that skips the rest of the lap, and
//! starts at offset 0. The header's `head` counts the bytes written and
//! `tail` the bytes consumed; the producer commits a message with one
//! Release store of `head` after its bytes, so a consumer never sees half a
//! message, even from a producer killed while it wrote. Each side waits
//! first by spinning on the other's counter, then on a shared futex word,
//! which the other side rings only when the waiter said it sleeps.
//!
//! Trust: the peer may crash at any point, or write anything anywhere in the
//! mapping. Each side keeps its own position in private memory and only
//! publishes it; everything it reads of the peer (its counter, a record
//! word) is read once, with an atomic load, into a local that is checked
//! before use, so whatever the header and records hold, this side never
//! panics, never reaches outside the mapping, never allocates more than the
//! largest message, and reports nonsense as [`RingError::Corrupt`]. The
//! message bytes are another matter. [`Message`] and [`Reservation`] hand
//! out `&[u8]` and `&mut [u8]` of the shared area, which Rust allows only
//! while nothing else writes those bytes: a peer that keeps the protocol
//! (writes only the free space, reads only what is committed) never does,
//! and a dead one writes nothing, but a peer whose memory is corrupted could,
//! and that would be a data race here, undefined behaviour in principle
//! (the slice's bounds stay checked locals; what a decoder might wrongly
//! assume is that a byte it reads twice does not change). So the ring offers
//! both: in place, for a side whose peer is trusted (a worker reading what
//! its pool wrote), and copied with word-sized atomic accesses
//! ([`Message::copy_into`], [`Ring::try_write`]), which are sound whatever
//! the peer does, for a side that trusts nothing (a pool reading what a
//! worker wrote). A peer that stops (dies, or never rings) can make a wait
//! last only until its deadline.

use std::cell::Cell;
use std::hint;
use std::io;
use std::num::NonZeroUsize;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::libc;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{madvise, mmap, munmap, MapFlags, MmapAdvise, ProtFlags};
use nix::sys::stat::fstat;
use nix::unistd::ftruncate;

/// Bytes before the data area: the header, padded to a page so that the
/// data area is page-aligned.
const HEADER_LEN: usize = 4096;

/// The smallest data area a ring may have: one page.
const MIN_CAPACITY: usize = 4096;

/// The largest data area a ring may have; its messages' lengths fit a `u32`.
const MAX_CAPACITY: usize = 1 << 30;

/// Bytes of a record word, and the alignment of every record.
const WORD: u64 = 8;

/// The header's first word: this layout, version 1.
const MAGIC: u64 = u64::from_le_bytes(*b"fmring01");

/// A record word's kind: a message of the record word's length follows.
const KIND_MESSAGE: u32 = u32::from_le_bytes(*b"msg1");

/// A record word's kind: the rest of the lap is skipped, the next record
/// starts at offset 0; its length is the bytes skipped after the word.
const KIND_WRAP: u32 = u32::from_le_bytes(*b"wrap");

/// How many times a waiter may halve its spin: after waits that ended
/// asleep it spins `spin / 2^MAX_SPIN_SHIFT`, ready to spin longer again.
const MAX_SPIN_SHIFT: u32 = 5;

/// Polls of the other side's counter between two reads of the clock while
/// spinning (a poll is a few ns, a clock read about 20).
const POLLS_PER_CLOCK_READ: u32 = 32;

/// A header field on a cache-line pair of its own, so that the producer's
/// and the consumer's stores do not evict each other's lines (adjacent-line
/// prefetch fetches lines in pairs).
#[derive(Debug)]
#[repr(C, align(128))]
struct Line<T>(T);

/// The header at the start of the mapping: atomics only, so all bytes are
/// a valid header and the peer can change none of it behind the compiler's
/// back. The memory file starts zeroed: an empty ring.
#[derive(Debug)]
#[repr(C)]
struct Header {
    /// Written once by [`Ring::create`], checked by [`Ring::open`].
    identity: Line<Identity>,
    /// Bytes written so far: stored by the producer only, after the bytes.
    head: Line<AtomicU64>,
    /// Bytes consumed so far: stored by the consumer only.
    tail: Line<AtomicU64>,
    /// Where the consumer sleeps until `head` moves.
    data: Line<Wakeup>,
    /// Where the producer sleeps until `tail` moves.
    space: Line<Wakeup>,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_LEN);

/// What makes a mapping a ring: the layout's magic and the data area's
/// length.
#[derive(Debug)]
#[repr(C)]
struct Identity {
    magic: AtomicU64,
    capacity: AtomicU64,
}

/// A shared futex word and the flag its one waiter raises before sleeping
/// on it. The other side, after moving its counter, rings the word only
/// when the flag is raised, and lowers it: an idle peer costs no system
/// call.
#[derive(Debug)]
#[repr(C)]
struct Wakeup {
    /// Bumped by each ring; the waiter sleeps while it holds what it read
    /// before it last checked the counter.
    seq: AtomicU32,
    /// 1 while the waiter is about to sleep or sleeps.
    sleeping: AtomicU32,
}

/// Why a ring refused a message or a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RingError {
    /// The message is larger than the ring takes: send it another way.
    #[error("a message of {len} bytes is larger than the ring takes ({max} bytes at most)")]
    TooLarge { len: usize, max: usize },
    /// The shared header or a record does not check out: the peer wrote
    /// nonsense (or memory that is not its own). Nothing more can be
    /// trusted from this ring: its worker is ended, and the next one gets a
    /// new ring.
    #[error("the ring's shared memory is corrupt: {0}")]
    Corrupt(&'static str),
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// What was waited for may be there: try now. Also said when the shared
    /// counters are corrupt, for the next read or write to report.
    Ready,
    /// The deadline passed first.
    TimedOut,
}

/// One side's view of a ring in a shared mapping: a producer's (it writes
/// with [`try_reserve`](Ring::try_reserve) or [`try_write`](Ring::try_write)),
/// a consumer's (it reads with [`read`](Ring::read)), or, within one
/// process, both. Each process, and each thread, has a `Ring` of its own:
/// one producer and one consumer in all.
#[derive(Debug)]
pub(crate) struct Ring {
    mapping: Mapping,
    /// The data area's length, a power of two, as checked when mapped;
    /// never read again from the shared header.
    capacity: u64,
    /// The producer's own count of bytes written, which it publishes as
    /// `head`.
    written: u64,
    /// The consumer's `tail` as the producer last read and checked it.
    seen_tail: u64,
    /// The consumer's own count of bytes consumed, which it publishes as
    /// `tail`.
    consumed: u64,
    /// The producer's `head` as the consumer last read and checked it.
    seen_head: u64,
    /// How many times [`wait_readable`](Ring::wait_readable) halves its
    /// spin, learned from how its recent waits ended.
    read_spin_shift: Cell<u32>,
    /// The same for [`wait_writable`](Ring::wait_writable).
    write_spin_shift: Cell<u32>,
}

// SAFETY: a `Ring` owns its mapping, which belongs to the process, not to a
// thread, and is unmapped once, when the `Ring` drops; its other fields are
// plain values. It is not `Sync`: the data area is written through `&mut`
// only, and the spin cells through `&self` of one thread.
unsafe impl Send for Ring {}

impl Ring {
    /// A new empty ring with a data area of `capacity` bytes (a power of two,
    /// from 4 KiB to 1 GiB), and its memory file, for another process to map
    /// with [`Ring::open`]: sent over a socket (`SCM_RIGHTS`) or inherited
    /// across `fork` (a forked child may also use this `Ring` itself: the
    /// mapping is shared). The file is sealed against shrinking, so that no
    /// process can cut the mapping short under another.
    pub(crate) fn create(capacity: usize) -> io::Result<(Ring, OwnedFd)> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a ring's capacity is a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} \
                     bytes, not {capacity}"
                ),
            ));
        }
        let file = memfd_create(
            c"forkmap-ring",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let len = HEADER_LEN + capacity;
        ftruncate(&file, len as i64)?;
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        let mapping = Mapping::new(&file, len)?;
        let header = mapping.header();
        header
            .identity
            .0
            .capacity
            .store(capacity as u64, Ordering::Relaxed);
        header.identity.0.magic.store(MAGIC, Ordering::Release);
        Ok((Ring::at(mapping, capacity as u64, 0, 0), file))
    }

    /// Maps the ring in `file`, made by [`Ring::create`], as it stands: its
    /// producer goes on from `head`, its consumer from `tail`. A file that
    /// is not a sealed ring of the length its header says, or whose counters
    /// are nonsense, is an error.
    pub(crate) fn open(file: impl AsFd) -> io::Result<Ring> {
        let file = file.as_fd();
        let seals = SealFlag::from_bits_retain(fcntl(file, FcntlArg::F_GET_SEALS)?);
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(not_a_ring("the file is not sealed against shrinking"));
        }
        let len = usize::try_from(fstat(file)?.st_size).unwrap_or(0);
        let capacity = len.wrapping_sub(HEADER_LEN);
        if len < HEADER_LEN
            || !capacity.is_power_of_two()
            || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
        {
            return Err(not_a_ring("the file's length is not a ring's"));
        }
        let mapping = Mapping::new(file, len)?;
        let header = mapping.header();
        if header.identity.0.magic.load(Ordering::Acquire) != MAGIC {
            return Err(not_a_ring("the header does not start with a ring's magic"));
        }
        let capacity = capacity as u64;
        if header.identity.0.capacity.load(Ordering::Relaxed) != capacity {
            return Err(not_a_ring("the header's capacity is not the file's"));
        }
        let head = header.head.0.load(Ordering::Acquire);
        let tail = header.tail.0.load(Ordering::Acquire);
        if head % WORD != 0 || tail % WORD != 0 || head.wrapping_sub(tail) > capacity {
            return Err(not_a_ring("the header's head and tail are nonsense"));
        }
        Ok(Ring::at(mapping, capacity, head, tail))
    }

    /// A ring over `mapping` whose producer has written `head` bytes and
    /// whose consumer has consumed `tail`.
    fn at(mapping: Mapping, capacity: u64, head: u64, tail: u64) -> Ring {
        Ring {
            mapping,
            capacity,
            written: head,
            seen_tail: tail,
            consumed: tail,
            seen_head: head,
            read_spin_shift: Cell::new(0),
            write_spin_shift: Cell::new(0),
        }
    }

    /// The largest message the ring takes: half its capacity, less a record
    /// word, so that an empty ring takes it wherever its counters stand.
    pub(crate) fn max_message(&self) -> usize {
        (self.capacity / 2 - WORD) as usize
    }

    /// Leaves the ring out of the processes this one forks from now on
    /// (`MADV_DONTFORK`): a worker forked by the pool's own process must not
    /// map its siblings' rings. Best effort: a kernel that refuses leaves
    /// the mapping inherited, as any other memory.
    pub(crate) fn keep_from_children(&self) {
        // SAFETY: the advice applies to this ring's own mapping, which is
        // mapped for as long as `self` lives; MADV_DONTFORK changes only
        // what a later fork copies, not this process's view of the memory.
        let _ = unsafe {
            madvise(
                self.mapping.start.cast(),
                self.mapping.len.get(),
                MmapAdvise::MADV_DONTFORK,
            )
        };
    }

    /// Empties the ring: both counters and both wake-up words back to zero
    /// (for the tests, which reuse a ring; a worker gets a new one).
    #[cfg(test)]
    fn reset(&mut self) {
        let header = self.mapping.header();
        header.head.0.store(0, Ordering::Relaxed);
        header.tail.0.store(0, Ordering::Relaxed);
        for wakeup in [&header.data.0, &header.space.0] {
            wakeup.seq.store(0, Ordering::Relaxed);
            wakeup.sleeping.store(0, Ordering::Relaxed);
        }
        self.written = 0;
        self.seen_tail = 0;
        self.consumed = 0;
        self.seen_head = 0;
        self.read_spin_shift.set(0);
        self.write_spin_shift.set(0);
    }

    // The producer's side.

    /// Room for a message of up to `max` bytes, contiguous in the data area,
    /// to be filled in place and committed with the length written; `None`
    /// while the ring is too full for `max` bytes (see
    /// [`wait_writable`](Ring::wait_writable)).
    pub(crate) fn try_reserve(&mut self, max: usize) -> Result<Option<Reservation<'_>>, RingError> {
        if max > self.max_message() {
            return Err(RingError::TooLarge {
                len: max,
                max: self.max_message(),
            });
        }
        let (skip, record) = self.footprint(max as u64);
        if self.free(self.seen_tail) < skip + record {
            self.seen_tail = self.checked_tail()?;
            if self.free(self.seen_tail) < skip + record {
                return Ok(None);
            }
        }
        Ok(Some(Reservation {
            ring: self,
            skip,
            max,
        }))
    }

    /// Writes `bytes` as one message, with word-sized atomic stores (sound
    /// whatever the consumer does to the free space meanwhile); `false`
    /// while the ring is too full for it.
    pub(crate) fn try_write(&mut self, bytes: &[u8]) -> Result<bool, RingError> {
        let Some(reservation) = self.try_reserve(bytes.len())? else {
            return Ok(false);
        };
        let words = reservation.ring.words(reservation.start(), bytes.len());
        let mut chunks = bytes.chunks_exact(WORD as usize);
        for (word, chunk) in words.iter().zip(&mut chunks) {
            let chunk = chunk.try_into().expect("chunks of a word");
            word.store(u64::from_ne_bytes(chunk), Ordering::Relaxed);
        }
        if let Some(last) = words.get(bytes.len() / WORD as usize) {
            let mut word = [0; WORD as usize];
            word[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            last.store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        reservation.commit(bytes.len());
        Ok(true)
    }

    /// Waits until a message of `len` bytes fits: spins for up to `spin`
    /// (less after recent waits that outlasted their spin), then sleeps on
    /// the shared futex word until the consumer frees space, or until
    /// `deadline`.
    pub(crate) fn wait_writable(
        &self,
        len: usize,
        spin: Duration,
        deadline: Option<Instant>,
    ) -> Waited {
        let header = self.mapping.header();
        let need = if len > self.max_message() {
            None
        } else {
            let (skip, record) = self.footprint(len as u64);
            Some(skip + record)
        };
        let ready = || match need {
            // try_reserve says why.
            None => true,
            Some(need) => {
                let tail = header.tail.0.load(Ordering::Relaxed);
                // A tail that does not check out is for try_reserve to report.
                self.written.wrapping_sub(tail) > self.capacity || self.free(tail) >= need
            }
        };
        wait_until(
            &header.space.0,
            spin,
            &self.write_spin_shift,
            deadline,
            ready,
        )
    }

    /// Bytes from the producer's position that a message of `len` bytes
    /// takes: what it skips to the lap's end when its record does not fit
    /// before it (0 otherwise), and its record.
    fn footprint(&self, len: u64) -> (u64, u64) {
        let record = WORD + len.next_multiple_of(WORD);
        let to_end = self.capacity - (self.written & (self.capacity - 1));
        let skip = if record <= to_end { 0 } else { to_end };
        (skip, record)
    }

    /// Free bytes in the data area if the consumer stands at `tail`.
    fn free(&self, tail: u64) -> u64 {
        self.capacity
            .saturating_sub(self.written.wrapping_sub(tail))
    }

    /// The consumer's `tail`, read once and checked: aligned, between where
    /// it was last seen and where the producer stands.
    fn checked_tail(&self) -> Result<u64, RingError> {
        let tail = self.mapping.header().tail.0.load(Ordering::Acquire);
        let unread = self.written.wrapping_sub(tail);
        if tail % WORD != 0
            || unread > self.capacity
            || tail.wrapping_sub(self.seen_tail) > self.written.wrapping_sub(self.seen_tail)
        {
            return Err(RingError::Corrupt(
                "the tail is not between its last value and the head",
            ));
        }
        Ok(tail)
    }

    /// Publishes a message of `len` bytes, reserved with `skip` bytes before
    /// it: the record words, then `head`, then a wake-up if the consumer
    /// sleeps.
    fn publish(&mut self, skip: u64, len: usize) {
        let mask = self.capacity - 1;
        if skip > 0 {
            let wrap = record_word(KIND_WRAP, skip - WORD);
            self.word(self.written & mask)
                .store(wrap, Ordering::Relaxed);
        }
        let at = self.written.wrapping_add(skip);
        self.word(at & mask)
            .store(record_word(KIND_MESSAGE, len as u64), Ordering::Relaxed);
        self.written = at.wrapping_add(WORD + (len as u64).next_multiple_of(WORD));
        let header = self.mapping.header();
        header.head.0.store(self.written, Ordering::Release);
        wake(&header.data.0);
    }

    // The consumer's side.

    /// The next message, in place; it is consumed when the [`Message`]
    /// drops. `None` while the ring is empty (see
    /// [`wait_readable`](Ring::wait_readable)); `Corrupt` when the producer's
    /// `head` or a record does not check out.
    pub(crate) fn read(&mut self) -> Result<Option<Message<'_>>, RingError> {
        let capacity = self.capacity;
        if self.seen_head == self.consumed {
            let head = self.mapping.header().head.0.load(Ordering::Acquire);
            if head % WORD != 0 || head.wrapping_sub(self.consumed) > capacity {
                return Err(RingError::Corrupt(
                    "the head is misaligned, behind the tail, or a lap ahead of it",
                ));
            }
            self.seen_head = head;
            if head == self.consumed {
                return Ok(None);
            }
        }
        // Records are whole multiples of the word from an aligned tail, so
        // `at`, `offset` and `unread` are too, and `unread` is at least a
        // word. The record words are read with relaxed loads: the Acquire
        // load of `head` that covered them ordered them after their stores.
        let mut at = self.consumed;
        let mut unread = self.seen_head.wrapping_sub(at);
        let mut offset = at & (capacity - 1);
        let mut word = self.word(offset).load(Ordering::Relaxed);
        if record_kind(word) == KIND_WRAP {
            let skip = capacity - offset;
            if offset == 0 || record_len(word) != skip - WORD || skip >= unread {
                return Err(RingError::Corrupt(
                    "a wrap record at offset 0, of the wrong length, or last",
                ));
            }
            at = at.wrapping_add(skip);
            unread -= skip;
            offset = 0;
            word = self.word(0).load(Ordering::Relaxed);
        }
        if record_kind(word) != KIND_MESSAGE {
            return Err(RingError::Corrupt("a record of no known kind"));
        }
        let len = record_len(word);
        let record = WORD + len.next_multiple_of(WORD);
        if len > self.max_message() as u64 || record > unread || offset + record > capacity {
            return Err(RingError::Corrupt(
                "a message longer than the largest, than the bytes written, or past the area's end",
            ));
        }
        Ok(Some(Message {
            start: offset + WORD,
            len: len as usize,
            end: at.wrapping_add(record),
            ring: self,
        }))
    }

    /// Whether a message (or something the next [`read`](Ring::read) will
    /// find corrupt) is there to read, without consuming it.
    pub(crate) fn has_message(&self) -> bool {
        self.seen_head != self.consumed
            || self.mapping.header().head.0.load(Ordering::Relaxed) != self.consumed
    }

    /// Waits until a message is there to read: spins for up to `spin` (less
    /// after recent waits that outlasted their spin), then sleeps on the
    /// shared futex word until the producer commits, or until `deadline`.
    /// A spurious wake-up or a signal does not end it early.
    pub(crate) fn wait_readable(&self, spin: Duration, deadline: Option<Instant>) -> Waited {
        let header = self.mapping.header();
        let ready = || {
            self.seen_head != self.consumed
                || header.head.0.load(Ordering::Relaxed) != self.consumed
        };
        wait_until(&header.data.0, spin, &self.read_spin_shift, deadline, ready)
    }

    /// Consumes the bytes up to `end`: publishes `tail`, then wakes the
    /// producer if it sleeps.
    fn release(&mut self, end: u64) {
        self.consumed = end;
        let header = self.mapping.header();
        header.tail.0.store(end, Ordering::Release);
        wake(&header.space.0);
    }

    /// The record word at `offset` of the data area.
    fn word(&self, offset: u64) -> &AtomicU64 {
        &self.words(offset, 1)[0]
    }

    /// The words that hold `len` bytes from `offset` of the data area (a
    /// multiple of 8), cut short at the area's end.
    fn words(&self, offset: u64, len: usize) -> &[AtomicU64] {
        debug_assert!(offset % WORD == 0 && offset + len as u64 <= self.capacity);
        let offset = offset & (self.capacity - 1) & !(WORD - 1);
        let count = (len as u64)
            .div_ceil(WORD)
            .min((self.capacity - offset) / WORD);
        // SAFETY: `offset`, masked above, is a multiple of 8 within the data
        // area, and `count` words from it end within it; the area is
        // page-aligned and mapped for as long as `self` lives, so the
        // pointer is aligned for a `u64`, valid for the borrow, and any
        // bits are valid atomics. Record words are only ever accessed
        // through such slices. Message bytes are also reached non-atomically,
        // in place, by a `Reservation` or a `Message`; within this process
        // those accesses and these are ordered by the Release/Acquire of
        // `head` and `tail` (a message is written before its commit, read
        // after it, and its room is not reserved again before its release).
        // Whatever another process does to these words, an atomic access of
        // ours is no data race: it reads some value.
        unsafe {
            let start = self.mapping.data().add(offset as usize);
            std::slice::from_raw_parts(start.cast::<AtomicU64>(), count as usize)
        }
    }
}

/// Room reserved for one message, [`Deref`] to `&mut [u8]` of the length
/// asked for, to fill in place (an encoder's sink can write straight into
/// it). Nothing reaches the consumer until [`commit`](Reservation::commit);
/// dropped without it, the room is not used.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    ring: &'a mut Ring,
    /// Bytes skipped to the end of the lap before the message's record.
    skip: u64,
    /// The bytes reserved.
    max: usize,
}

impl Reservation<'_> {
    /// Publishes the first `len` bytes of the room as one message.
    ///
    /// # Panics
    ///
    /// If `len` is more than was reserved.
    pub(crate) fn commit(self, len: usize) {
        assert!(
            len <= self.max,
            "committed {len} bytes of a {}-byte reservation",
            self.max
        );
        self.ring.publish(self.skip, len);
    }

    /// Where the message's bytes start in the data area.
    fn start(&self) -> u64 {
        (self.ring.written.wrapping_add(self.skip) & (self.ring.capacity - 1)) + WORD
    }
}

impl Deref for Reservation<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: see `deref_mut`; a shared view of the same bytes.
        unsafe {
            std::slice::from_raw_parts(
                self.ring.mapping.data().add(self.start() as usize),
                self.max,
            )
        }
    }
}

impl DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the reservation's room, `start..start + max`, lies in the
        // data area (`footprint` placed the whole record before the end of
        // the lap) and is free space: `try_reserve` found `skip + record`
        // bytes free after the consumer's tail, read once and checked. The mapping outlives the borrow of
        // the ring, and the borrow is exclusive, so no other `Reservation`
        // or `Message` of this process covers these bytes. A consumer that
        // keeps the protocol does not touch free space; one that writes it
        // anyway makes this a data race (see the module's docs): an encoder
        // only writes its sink, so the effect is garbage for that consumer.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ring.mapping.data().add(self.start() as usize),
                self.max,
            )
        }
    }
}

/// A message read from the ring, [`Deref`] to its bytes in place; consumed
/// (its room handed back to the producer) when dropped.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    ring: &'a mut Ring,
    /// Where its bytes start in the data area.
    start: u64,
    len: usize,
    /// The consumer's position after it.
    end: u64,
}

impl Message<'_> {
    /// Copies the message into `out` (replacing what it held) with
    /// word-sized atomic loads: sound whatever the producer writes
    /// meanwhile, which then only garbles the copy. `out` grows to at most
    /// [`Ring::max_message`] plus a word.
    pub(crate) fn copy_into(&self, out: &mut Vec<u8>) {
        let words = self.ring.words(self.start, self.len);
        out.clear();
        out.reserve_exact(words.len() * WORD as usize);
        out.resize(words.len() * WORD as usize, 0);
        for (chunk, word) in out.chunks_exact_mut(WORD as usize).zip(words) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        out.truncate(self.len);
    }
}

impl Deref for Message<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `start..start + len` lies in the data area: `read` checked
        // the record, read once into locals, against the area's end and the
        // bytes written, and these locals are all this reads. The mapping
        // outlives the borrow of the ring. The bytes were committed: the
        // producer wrote them before its Release store of `head`, which
        // `read` loaded with Acquire, and a producer that keeps the
        // protocol does not write them again until this message is consumed
        // (it drops, after the borrow ends). A dead producer writes nothing.
        // A producer that writes them anyway (its memory corrupted) makes
        // this a data race, undefined behaviour in principle: use
        // `copy_into` where the producer is not trusted (see the module's
        // docs). In practice such writes garble the bytes, which every
        // decoder checks, and never move the slice's bounds.
        unsafe {
            std::slice::from_raw_parts(self.ring.mapping.data().add(self.start as usize), self.len)
        }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        self.ring.release(self.end);
    }
}

/// A shared read-write mapping of a whole ring file, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    start: NonNull<u8>,
    len: NonZeroUsize,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (at least a header's).
    fn new(file: impl AsFd, len: usize) -> io::Result<Mapping> {
        let len = NonZeroUsize::new(len).filter(|len| len.get() >= HEADER_LEN);
        let len = len.ok_or_else(|| not_a_ring("the mapping is shorter than a header"))?;
        // SAFETY: a new shared mapping at an address the kernel chooses
        // overlaps no memory of this process. The file holds at least `len`
        // bytes (its length was set or read, and it is sealed against
        // shrinking), so no access within the mapping faults.
        let start = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }
        .map_err(|e| {
            let hint = "a smaller `ring_size` needs less address space";
            io::Error::other(format!("could not map a ring of {len} bytes: {e} ({hint})"))
        })?;
        Ok(Mapping {
            start: start.cast(),
            len,
        })
    }

    /// The header at the mapping's start.
    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned (more than `Header` needs),
        // at least `HEADER_LEN` long, and mapped while `self` lives. A
        // header is atomics only, so any bytes are a valid one, and a shared
        // reference to it is sound while another process writes it.
        unsafe { self.start.cast::<Header>().as_ref() }
    }

    /// The start of the data area, after the header.
    fn data(&self) -> *mut u8 {
        // SAFETY: the mapping is at least `HEADER_LEN` long, so the result
        // is within it or one past its end.
        unsafe { self.start.as_ptr().add(HEADER_LEN) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: this value mapped `len` bytes at `start` and is their only
        // owner; every reference into them borrows a `Ring` that owns it, so
        // none outlives this.
        let _ = unsafe { munmap(self.start.cast(), self.len.get()) };
    }
}

/// An error for a file that is not a ring.
fn not_a_ring(why: &'static str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a forkmap ring: {why}"),
    )
}

/// A record word: `kind` in the high half, `len` in the low.
fn record_word(kind: u32, len: u64) -> u64 {
    (u64::from(kind) << 32) | len
}

/// A record word's kind.
fn record_kind(word: u64) -> u32 {
    (word >> 32) as u32
}

/// A record word's length.
fn record_len(word: u64) -> u64 {
    word & u64::from(u32::MAX)
}

/// Waits until `ready`, for the other side to move its counter: polls for
/// up to `spin >> shift`, then sleeps on `wakeup` until rung or `deadline`.
/// `shift` adapts to how long waits last: back to 0 (the whole `spin`)
/// after a wait that ended within `spin`, since spinning that long would
/// have saved the sleep; one more after a longer one or a timeout, so that
/// a side whose peer is busy or idle for long stops burning its CPU.
fn wait_until(
    wakeup: &Wakeup,
    spin: Duration,
    shift: &Cell<u32>,
    deadline: Option<Instant>,
    ready: impl Fn() -> bool,
) -> Waited {
    if ready() {
        return Waited::Ready;
    }
    let started = Instant::now();
    let spin_end = started.checked_add(spin / (1 << shift.get()));
    let spin_end = match (spin_end, deadline) {
        (Some(spin_end), Some(deadline)) => Some(spin_end.min(deadline)),
        (spin_end, None) => spin_end,
        (None, deadline) => deadline,
    };
    loop {
        for _ in 0..POLLS_PER_CLOCK_READ {
            if ready() {
                shift.set(0);
                return Waited::Ready;
            }
            hint::spin_loop();
        }
        if spin_end.is_some_and(|spin_end| Instant::now() >= spin_end) {
            break;
        }
        // The core goes to whoever else is ready to run there (on a machine
        // with fewer cores than busy threads, the peer this side waits for).
        std::thread::yield_now();
    }
    let waited = loop {
        // Read the word before announcing: a ring after this changes it,
        // and the futex then returns at once.
        let seq = wakeup.seq.load(Ordering::Acquire);
        wakeup.sleeping.store(1, Ordering::Relaxed);
        // Pairs with the fence in `wake`: either the other side sees the
        // flag raised, or this sees its counter moved.
        fence(Ordering::SeqCst);
        if ready() {
            wakeup.sleeping.store(0, Ordering::Relaxed);
            break Waited::Ready;
        }
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    wakeup.sleeping.store(0, Ordering::Relaxed);
                    break Waited::TimedOut;
                }
                Some(left)
            }
        };
        futex_wait(&wakeup.seq, seq, timeout);
        wakeup.sleeping.store(0, Ordering::Relaxed);
        if ready() {
            break Waited::Ready;
        }
    };
    if waited == Waited::Ready && started.elapsed() <= spin {
        shift.set(0);
    } else {
        shift.set((shift.get() + 1).min(MAX_SPIN_SHIFT));
    }
    waited
}

/// Rings `wakeup` if its waiter said it sleeps, after this side moved its
/// counter.
fn wake(wakeup: &Wakeup) {
    // Pairs with the fence in `wait_until`.
    fence(Ordering::SeqCst);
    if wakeup.sleeping.load(Ordering::Relaxed) != 0
        && wakeup.sleeping.swap(0, Ordering::Relaxed) != 0
    {
        wakeup.seq.fetch_add(1, Ordering::Release);
        futex_wake(&wakeup.seq);
    }
}

/// Sleeps while `word` holds `expected`, for at most `timeout`; returns
/// early on a wake-up, a signal, or at once if the word differs. Shared
/// (not `FUTEX_PRIVATE_FLAG`): the waker is another process.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timeout = timeout.map(|timeout| libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    });
    let timeout = timeout
        .as_ref()
        .map_or(ptr::null(), |timeout| timeout as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 at `word`, which lives for
    // the call, and the timespec at `timeout` (or none), which lives on this
    // stack; it writes no memory. Its errors (EAGAIN, EINTR, ETIMEDOUT) all
    // mean "look again", which the caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            timeout,
            ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes whoever sleeps on `word`: all of them, so that a stranger sleeping
/// there cannot take the wake-up meant for the peer.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE takes the address of an aligned u32 that lives for
    // the call as a key only; it reads and writes no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::thread;

    use nix::errno::Errno;
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::signal::{kill, Signal};
    use nix::sys::time::TimeValLike;
    use nix::sys::uio::pwrite;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult, Pid};

    use super::*;
    use crate::platform::monotonic_ns;
    use crate::test_rng::Rng;

    /// The spin budget the tests wait with.
    const SPIN: Duration = Duration::from_micros(50);

    /// A deadline no test should reach.
    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(20))
    }

    /// Fills `out` with the bytes of message `seq`.
    fn pattern(seq: u64, out: &mut [u8]) {
        let mut rng = Rng::new(seq);
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
        }
    }

    /// FNV-1a.
    fn checksum(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Writes checked message `seq` into `out` (16 bytes at least): its
    /// number, the checksum of the rest, then the rest.
    fn fill_checked(seq: u64, out: &mut [u8]) {
        pattern(seq, &mut out[16..]);
        let sum = checksum(&out[16..]);
        out[..8].copy_from_slice(&seq.to_le_bytes());
        out[8..16].copy_from_slice(&sum.to_le_bytes());
    }

    /// Checks that `message` is checked message `seq`, of `len` bytes.
    fn check(seq: u64, len: usize, message: &[u8]) {
        assert_eq!(message.len(), len, "message {seq}'s length");
        let number = u64::from_le_bytes(message[..8].try_into().unwrap());
        assert_eq!(number, seq, "a message lost or out of order");
        let sum = u64::from_le_bytes(message[8..16].try_into().unwrap());
        assert_eq!(checksum(&message[16..]), sum, "message {seq} garbled");
    }

    /// The length of the next checked message the tests send.
    fn checked_len(sizes: &mut Rng) -> usize {
        16 + sizes.below(240)
    }

    /// Sends checked message `seq` of `len` bytes, in place, waiting for
    /// room; `Err` says what went wrong, without allocating (a forked child
    /// calls this).
    fn send_checked(ring: &mut Ring, seq: u64, len: usize) -> Result<(), &'static str> {
        loop {
            match ring.try_reserve(len) {
                Ok(Some(mut room)) => {
                    fill_checked(seq, &mut room[..len]);
                    room.commit(len);
                    return Ok(());
                }
                Ok(None) => {
                    if ring.wait_writable(len, SPIN, soon()) == Waited::TimedOut {
                        return Err("no room before the deadline");
                    }
                }
                Err(_) => return Err("try_reserve failed"),
            }
        }
    }

    /// Receives checked message `seq`, of `len` bytes, waiting for it.
    fn receive_checked(ring: &mut Ring, seq: u64, len: usize) {
        loop {
            if let Some(message) = ring.read().unwrap() {
                check(seq, len, &message);
                return;
            }
            assert_eq!(ring.wait_readable(SPIN, soon()), Waited::Ready);
        }
    }

    /// A forked child, killed and reaped if the test ends before it does.
    struct Forked {
        pid: Pid,
        reaped: bool,
    }

    /// Forks a child that runs `body` and exits with what it returns (101
    /// if it panics). Other test threads may hold locks at the fork, so
    /// `body` takes none: it must not allocate or print.
    fn fork_running(body: impl FnOnce() -> i32) -> Forked {
        // SAFETY: the child runs `body`, which touches rings, atomics and
        // system calls only (no lock another thread of this test binary
        // could hold at the fork), then leaves with `_exit`: it never
        // returns into the test harness's frames or runs its destructors.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
                // SAFETY: ends the child at once, skipping the destructors
                // and exit handlers that belong to the test process.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => Forked {
                pid: child,
                reaped: false,
            },
        }
    }

    impl Forked {
        /// Waits for the child to end.
        fn wait(mut self) -> WaitStatus {
            self.reaped = true;
            loop {
                match waitpid(self.pid, None) {
                    Err(Errno::EINTR) => {}
                    status => return status.expect("waitpid"),
                }
            }
        }
    }

    impl Drop for Forked {
        fn drop(&mut self) {
            if !self.reaped {
                let _ = kill(self.pid, Signal::SIGKILL);
                let _ = waitpid(self.pid, None);
            }
        }
    }

    #[test]
    fn messages_of_every_edge_size_round_trip() {
        let (mut ring, _file) = Ring::create(8192).unwrap();
        let max = ring.max_message();
        assert_eq!(max, 4096 - 8);
        for len in [
            0,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            255,
            1000,
            max - 9,
            max - 8,
            max - 1,
            max,
        ] {
            let mut bytes = vec![0; len];
            pattern(len as u64, &mut bytes);

            assert_eq!(ring.try_write(&bytes), Ok(true));
            let message = ring.read().unwrap().expect("a message");
            assert_eq!(&*message, &bytes[..], "{len} bytes, written by copy");
            let mut copy = Vec::new();
            message.copy_into(&mut copy);
            assert_eq!(copy, bytes, "{len} bytes, copied out");
            drop(message);
            assert!(ring.read().unwrap().is_none());

            let mut room = ring.try_reserve(max).unwrap().expect("room");
            room[..len].copy_from_slice(&bytes);
            room.commit(len);
            let message = ring.read().unwrap().expect("a message");
            assert_eq!(&*message, &bytes[..], "{len} bytes, written in place");
            drop(message);
            assert!(ring.read().unwrap().is_none());
        }

        ring.try_reserve(16).unwrap().expect("room").fill(1);
        assert!(ring.read().unwrap().is_none(), "an uncommitted reservation");

        let too_large = RingError::TooLarge { len: max + 1, max };
        assert_eq!(ring.try_write(&vec![0; max + 1]), Err(too_large.clone()));
        assert_eq!(ring.try_reserve(max + 1).unwrap_err(), too_large);
        assert_eq!(
            ring.wait_writable(max + 1, SPIN, None),
            Waited::Ready,
            "for try_reserve to say why"
        );
    }

    #[test]
    fn a_full_ring_says_full_until_read_and_an_empty_one_says_empty() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        // 32 records of 128 bytes fill the area exactly.
        for seq in 0..32 {
            assert_eq!(ring.try_write(&[seq as u8; 120]), Ok(true), "message {seq}");
        }
        assert_eq!(ring.try_write(&[0; 120]), Ok(false));
        assert!(
            ring.try_reserve(0).unwrap().is_none(),
            "not even a record word"
        );
        let now = Some(Instant::now());
        assert_eq!(ring.wait_writable(0, SPIN, now), Waited::TimedOut);

        assert_eq!(&*ring.read().unwrap().unwrap(), &[0; 120]);
        assert_eq!(ring.wait_writable(120, SPIN, now), Waited::Ready);
        assert_eq!(ring.try_write(&[32; 120]), Ok(true));
        assert_eq!(ring.try_write(&[0; 120]), Ok(false));

        for seq in 1..=32 {
            assert_eq!(&*ring.read().unwrap().unwrap(), &[seq as u8; 120]);
        }
        assert!(ring.read().unwrap().is_none());
        assert!(ring.read().unwrap().is_none());
        assert_eq!(ring.wait_readable(SPIN, now), Waited::TimedOut);
    }

    #[test]
    fn messages_wrap_around_over_many_laps() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        let capacity = ring.capacity;
        let max = ring.max_message();
        let mut rng = Rng::new(7);
        let mut unread = VecDeque::new();
        let (mut next, mut refused, mut wraps) = (0u64, 0, 0);
        let mut bytes = vec![0; max];
        let mut copy = Vec::new();
        while ring.written < 20 * capacity {
            if rng.below(3) > 0 {
                let len = if rng.below(8) == 0 {
                    rng.below(max + 1)
                } else {
                    rng.below(200)
                };
                pattern(next, &mut bytes[..len]);
                let (skip, record) = ring.footprint(len as u64);
                let free = capacity - (ring.written - ring.consumed);
                let fits = skip + record <= free;
                assert_eq!(
                    ring.try_write(&bytes[..len]),
                    Ok(fits),
                    "{len} bytes, {free} free"
                );
                if fits {
                    wraps += usize::from(skip > 0);
                    unread.push_back((next, len));
                    next += 1;
                } else {
                    refused += 1;
                }
            } else {
                for _ in 0..rng.below(4) {
                    let Some((seq, len)) = unread.pop_front() else {
                        assert!(ring.read().unwrap().is_none());
                        break;
                    };
                    pattern(seq, &mut bytes[..len]);
                    let message = ring.read().unwrap().expect("a message");
                    assert_eq!(&*message, &bytes[..len], "message {seq}");
                    message.copy_into(&mut copy);
                    assert_eq!(copy, &bytes[..len], "message {seq}, copied");
                }
            }
        }
        while let Some((seq, len)) = unread.pop_front() {
            pattern(seq, &mut bytes[..len]);
            assert_eq!(&*ring.read().unwrap().unwrap(), &bytes[..len]);
        }
        assert!(ring.read().unwrap().is_none());
        // About one a lap: most laps end in a message that does not fit.
        assert!(wraps >= 15, "{wraps} wrap records in 20 laps");
        assert!(refused >= 20, "{refused} writes refused");
    }

    #[test]
    fn two_threads_pass_a_million_checked_messages() {
        const COUNT: u64 = 1_000_000;
        let (mut consumer, file) = Ring::create(1 << 16).unwrap();
        let mut producer = Ring::open(&file).unwrap();
        thread::scope(|scope| {
            scope.spawn(move || {
                let mut sizes = Rng::new(3);
                for seq in 0..COUNT {
                    send_checked(&mut producer, seq, checked_len(&mut sizes)).unwrap();
                }
            });
            let mut sizes = Rng::new(3);
            let mut copy = Vec::new();
            for seq in 0..COUNT {
                let len = checked_len(&mut sizes);
                if seq % 16 == 0 {
                    let message = loop {
                        if let Some(message) = consumer.read().unwrap() {
                            break message;
                        }
                        assert_eq!(consumer.wait_readable(SPIN, soon()), Waited::Ready);
                    };
                    message.copy_into(&mut copy);
                    check(seq, len, &copy);
                } else {
                    receive_checked(&mut consumer, seq, len);
                }
            }
        });
        assert!(consumer.read().unwrap().is_none());
    }

    #[test]
    fn a_forked_child_produces_through_a_second_mapping() {
        const COUNT: u64 = 100_000;
        let (mut ring, file) = Ring::create(1 << 16).unwrap();
        let child = fork_running(|| {
            let Ok(mut ring) = Ring::open(&file) else {
                return 2;
            };
            let mut sizes = Rng::new(5);
            for seq in 0..COUNT {
                if send_checked(&mut ring, seq, checked_len(&mut sizes)).is_err() {
                    return 3;
                }
            }
            0
        });
        let mut sizes = Rng::new(5);
        for seq in 0..COUNT {
            receive_checked(&mut ring, seq, checked_len(&mut sizes));
        }
        let status = child.wait();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
        assert!(ring.read().unwrap().is_none());
    }

    #[test]
    fn a_parent_asleep_wakes_when_a_forked_child_writes() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        let started = Instant::now();
        let child = fork_running(|| {
            thread::sleep(Duration::from_millis(50));
            let sent = monotonic_ns();
            match ring.try_write(&sent.to_ne_bytes()) {
                Ok(true) => 0,
                _ => 2,
            }
        });
        let waited = ring.wait_readable(SPIN, Some(started + Duration::from_secs(10)));
        let woken = monotonic_ns();
        assert_eq!(waited, Waited::Ready);
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "woke before the write"
        );
        let message = ring.read().unwrap().expect("the child's message");
        let sent = u64::from_ne_bytes(message[..].try_into().unwrap());
        let latency = Duration::from_nanos(woken.saturating_sub(sent));
        assert!(
            latency < Duration::from_millis(20),
            "woke {latency:?} after the write"
        );
        drop(message);
        let rung = ring.mapping.header().data.0.seq.load(Ordering::Relaxed);
        assert_eq!(
            rung, 1,
            "the child rang the futex once, for the sleeping parent"
        );
        let status = child.wait();
        assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    }

    #[test]
    fn a_producer_killed_mid_write_leaves_only_whole_messages() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        let (halfway_read, halfway_write) = nix::unistd::pipe().unwrap();
        let producer = &mut ring;
        let child = fork_running(move || {
            let mut bytes = [0; 100];
            for seq in 0..10 {
                pattern(seq, &mut bytes);
                if producer.try_write(&bytes) != Ok(true) {
                    return 2;
                }
            }
            let Ok(Some(mut room)) = producer.try_reserve(1000) else {
                return 3;
            };
            room[..500].fill(0xab);
            let _ = nix::unistd::write(&halfway_write, &[1]);
            loop {
                thread::sleep(Duration::from_secs(1));
            }
        });
        // The parent's copy of the write end went with the closure: the read
        // ends at the child's byte, or at its death.
        let mut byte = [0];
        assert_eq!(nix::unistd::read(&halfway_read, &mut byte), Ok(1));
        kill(child.pid, Signal::SIGKILL).unwrap();
        let status = child.wait();
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
            "{status:?}"
        );

        // Ten records of 8 + 104 bytes, then the half-written message.
        let half = 10 * 112 + 8;
        // SAFETY: the bytes are in the data area, and the only other writer
        // is dead.
        let written = unsafe { std::slice::from_raw_parts(ring.mapping.data().add(half), 500) };
        assert!(
            written.iter().all(|&byte| byte == 0xab),
            "the child wrote half"
        );
        let mut bytes = [0; 100];
        for seq in 0..10 {
            pattern(seq, &mut bytes);
            assert_eq!(&*ring.read().unwrap().expect("a whole message"), &bytes);
        }
        assert!(ring.read().unwrap().is_none());
        let now = Some(Instant::now());
        assert_eq!(ring.wait_readable(SPIN, now), Waited::TimedOut);
    }

    /// Where the header's counters start in the mapping.
    const HEAD: usize = std::mem::offset_of!(Header, head);
    const TAIL: usize = std::mem::offset_of!(Header, tail);

    /// Writes `word` over the mapping's 8 bytes at `offset`, as a peer
    /// scribbling would.
    fn scribble(ring: &Ring, offset: usize, word: u64) {
        assert!(offset + 8 <= ring.mapping.len.get());
        let at = ring.mapping.start.as_ptr().wrapping_add(offset);
        // SAFETY: within the mapping (checked above); nothing else of this
        // test touches the ring meanwhile.
        unsafe { at.cast::<u64>().write_unaligned(word) }
    }

    /// The mapping's 8 bytes at `offset`.
    fn peek(ring: &Ring, offset: usize) -> u64 {
        assert!(offset + 8 <= ring.mapping.len.get());
        let at = ring.mapping.start.as_ptr().wrapping_add(offset);
        // SAFETY: within the mapping (checked above); nothing else of this
        // test touches the ring meanwhile.
        unsafe { at.cast::<u64>().read_unaligned() }
    }

    /// What a peer might scribble over a ring: a byte anywhere in the
    /// header's fields or the data area, or a plausible counter or record
    /// word, to reach the checks past the first.
    fn scribble_somewhere(ring: &Ring, rng: &mut Rng) {
        let capacity = ring.capacity as usize;
        let aligned = |rng: &mut Rng| HEADER_LEN + rng.below(capacity / 8) * 8;
        let near = |rng: &mut Rng, from: u64| -> u64 {
            let step = rng.below(capacity / 8 + 8) as u64 * 8;
            if rng.below(4) == 0 {
                rng.next()
            } else if rng.below(2) == 0 {
                from.wrapping_add(step)
            } else {
                from.wrapping_sub(step)
            }
        };
        match rng.below(6) {
            0 => {
                let at = rng.below(640 / 8) * 8;
                let mut word = peek(ring, at).to_ne_bytes();
                word[rng.below(8)] = rng.next() as u8;
                scribble(ring, at, u64::from_ne_bytes(word));
            }
            1 => scribble(ring, HEAD, near(rng, ring.consumed)),
            2 => scribble(ring, TAIL, near(rng, ring.written)),
            3 => {
                let at = HEADER_LEN + rng.below(capacity);
                scribble(ring, at.min(HEADER_LEN + capacity - 8), rng.next());
            }
            _ => {
                // Half the time the record the consumer reads next.
                let at = if rng.below(2) == 0 {
                    HEADER_LEN + (ring.consumed & (ring.capacity - 1)) as usize
                } else {
                    aligned(rng)
                };
                let kind = [KIND_MESSAGE, KIND_WRAP, rng.next() as u32][rng.below(3)];
                let to_end = (HEADER_LEN + capacity - at) as u64;
                let len = match rng.below(5) {
                    0 => rng.below(64) as u64,
                    1 => rng.below(capacity) as u64,
                    2 => to_end - 8,
                    3 => to_end - 8 + 8 * rng.below(4) as u64,
                    _ => u64::from(rng.next() as u32),
                };
                scribble(ring, at, record_word(kind, len));
            }
        }
    }

    #[test]
    fn scribbled_memory_reads_as_messages_empty_or_corrupt_and_never_out_of_bounds() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        let max = ring.max_message();
        let data = ring.mapping.data() as usize;
        let mut rng = Rng::new(11);
        let mut bytes = vec![0; max];
        let (mut read, mut empty) = (0, 0);
        let mut corrupt = std::collections::HashSet::new();
        for round in 0..5000 {
            ring.reset();
            // Move the counters somewhere along a lap, then leave a few
            // messages unread.
            for seq in 0..rng.below(40) as u64 {
                let len = rng.below(300);
                pattern(seq, &mut bytes[..len]);
                assert_eq!(ring.try_write(&bytes[..len]), Ok(true));
                drop(ring.read().unwrap());
            }
            for seq in 0..rng.below(6) as u64 {
                let len = rng.below(if seq == 0 { max } else { 300 });
                let _ = ring.try_write(&bytes[..len]).unwrap();
            }
            for _ in 0..=rng.below(3) {
                scribble_somewhere(&ring, &mut rng);
            }

            let mut copy = Vec::new();
            for _ in 0..20 {
                match ring.read() {
                    Ok(Some(message)) => {
                        read += 1;
                        let start = message.as_ptr() as usize;
                        assert!(
                            start >= data && start + message.len() <= data + 4096,
                            "round {round}"
                        );
                        assert!(message.len() <= max);
                        message.copy_into(&mut copy);
                        assert_eq!(copy, &*message);
                        assert!(copy.capacity() <= max + 8, "round {round}");
                    }
                    Ok(None) => {
                        empty += 1;
                        break;
                    }
                    Err(RingError::Corrupt(why)) => {
                        corrupt.insert(why);
                        break;
                    }
                    Err(error) => panic!("round {round}: {error}"),
                }
            }
            let now = Some(Instant::now());
            let _ = ring.wait_readable(Duration::ZERO, now);
            let _ = ring.wait_writable(100, Duration::ZERO, now);
            let len = rng.below(max + 1);
            match ring.try_write(&bytes[..len]) {
                Ok(_) => {}
                Err(RingError::Corrupt(why)) => {
                    corrupt.insert(why);
                }
                Err(error) => panic!("round {round}: {error}"),
            }
        }
        // Every outcome, and every check failed at least once: the scribbles
        // reach past the first checks.
        assert!(read > 5000 && empty > 1000, "{read} read, {empty} empty");
        assert_eq!(corrupt.len(), 5, "{corrupt:?}");
    }

    /// A memory file of `len` bytes starting with `header`, sealed against
    /// shrinking when `sealed`.
    fn file_with(header: &[u8], len: usize, sealed: bool) -> OwnedFd {
        let file = memfd_create(c"test-ring", MFdFlags::MFD_ALLOW_SEALING).unwrap();
        ftruncate(&file, len as i64).unwrap();
        let header = &header[..header.len().min(len)];
        assert_eq!(pwrite(&file, header, 0), Ok(header.len()));
        if sealed {
            fcntl(&file, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).unwrap();
        }
        file
    }

    /// The header of a valid ring of `capacity` with the given counters.
    fn header_bytes(capacity: u64, head: u64, tail: u64) -> Vec<u8> {
        let mut header = vec![0; 640];
        header[..8].copy_from_slice(&MAGIC.to_ne_bytes());
        header[8..16].copy_from_slice(&capacity.to_ne_bytes());
        header[HEAD..HEAD + 8].copy_from_slice(&head.to_ne_bytes());
        header[TAIL..TAIL + 8].copy_from_slice(&tail.to_ne_bytes());
        header
    }

    #[test]
    fn open_maps_only_sealed_rings_whose_header_checks_out() {
        let ring_len = HEADER_LEN + 4096;
        let valid = header_bytes(4096, 4096 + 64, 4096);
        assert!(Ring::open(file_with(&valid, ring_len, true)).is_ok());
        let (pipe, _) = nix::unistd::pipe().unwrap();
        for (why, file) in [
            ("a pipe", pipe),
            ("unsealed", file_with(&valid, ring_len, false)),
            ("too short", file_with(&valid, 4096 + 2048, true)),
            ("not a power of two", file_with(&valid, ring_len + 8, true)),
            ("zeroed", file_with(&[], ring_len, true)),
            (
                "another capacity",
                file_with(&header_bytes(8192, 0, 0), ring_len, true),
            ),
            (
                "tail ahead",
                file_with(&header_bytes(4096, 0, 8), ring_len, true),
            ),
            (
                "a lap ahead",
                file_with(&header_bytes(4096, 4104, 0), ring_len, true),
            ),
            (
                "misaligned",
                file_with(&header_bytes(4096, 4, 4), ring_len, true),
            ),
        ] {
            assert!(Ring::open(file).is_err(), "{why}");
        }

        let mut rng = Rng::new(13);
        let (mut opened, mut refused) = (0, 0);
        for _ in 0..2000 {
            let capacity = 4096 << rng.below(2);
            let head = rng.below(4 * capacity) as u64 & !7;
            let tail = head.wrapping_sub(rng.below(capacity + 16) as u64 & !7);
            let mut header = header_bytes(capacity as u64, head, tail);
            if rng.below(2) == 0 {
                header = rng.mutate(&header);
            }
            let len = match rng.below(8) {
                0 => rng.below(3 * 4096),
                1 => HEADER_LEN + capacity + 8 * rng.below(2),
                _ => HEADER_LEN + capacity,
            };
            let file = file_with(&header, len, rng.below(8) > 0);
            for _ in 0..rng.below(4) {
                let at = 8 * rng.below(len / 8 + 1) as i64;
                let _ = pwrite(&file, &rng.next().to_ne_bytes(), at);
            }
            let Ok(mut ring) = Ring::open(&file) else {
                refused += 1;
                continue;
            };
            opened += 1;
            let max = ring.max_message();
            assert_eq!(
                ring.mapping.len.get() as u64,
                HEADER_LEN as u64 + ring.capacity
            );
            assert_eq!(
                fstat(&file).unwrap().st_size as usize,
                ring.mapping.len.get()
            );
            for _ in 0..10 {
                match ring.read() {
                    Ok(Some(message)) => assert!(message.len() <= max),
                    Ok(None) | Err(RingError::Corrupt(_)) => break,
                    Err(error) => panic!("{error}"),
                }
            }
        }
        assert!(
            opened > 500 && refused > 500,
            "{opened} opened, {refused} refused"
        );
    }

    /// CPU time this thread has used.
    fn thread_cpu_time() -> Duration {
        let usage = getrusage(UsageWho::RUSAGE_THREAD).unwrap();
        let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
        Duration::from_micros(micros as u64)
    }

    #[test]
    fn waiting_idle_for_a_second_costs_almost_no_cpu() {
        let (ring, _file) = Ring::create(4096).unwrap();
        let started = Instant::now();
        let cpu = thread_cpu_time();
        let deadline = started + Duration::from_secs(1);
        assert_eq!(ring.wait_readable(SPIN, Some(deadline)), Waited::TimedOut);
        let cpu = thread_cpu_time() - cpu;
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(cpu < Duration::from_millis(20), "{cpu:?} of CPU");
    }

    #[test]
    fn waits_spin_less_after_long_waits_and_all_their_budget_after_short_ones() {
        let (mut consumer, file) = Ring::create(4096).unwrap();
        let mut producer = Ring::open(&file).unwrap();
        let soon = || Some(Instant::now() + Duration::from_millis(2));
        for shift in 1..=MAX_SPIN_SHIFT + 1 {
            assert_eq!(consumer.wait_readable(SPIN, soon()), Waited::TimedOut);
            assert_eq!(consumer.read_spin_shift.get(), shift.min(MAX_SPIN_SHIFT));
        }
        // A message 5 ms after a wait with a spin of `spin` starts.
        let mut wait_for_late_message = |spin: Duration| {
            thread::scope(|scope| {
                scope.spawn(|| {
                    thread::sleep(Duration::from_millis(5));
                    assert_eq!(producer.try_write(b"late"), Ok(true));
                });
                assert_eq!(consumer.wait_readable(spin, None), Waited::Ready);
            });
            assert_eq!(&*consumer.read().unwrap().unwrap(), b"late");
            consumer.read_spin_shift.get()
        };
        // A wait within the spin, even a shrunk one (10 s / 32): all of it
        // next time.
        assert_eq!(wait_for_late_message(Duration::from_secs(10)), 0);
        // A wait longer than the spin: half of it next time.
        assert_eq!(wait_for_late_message(Duration::from_millis(1)), 1);
    }

    #[test]
    fn a_reset_ring_is_empty_and_serves_again() {
        let (mut ring, _file) = Ring::create(4096).unwrap();
        for _ in 0..100 {
            assert_eq!(ring.try_write(&[9; 100]), Ok(true));
            drop(ring.read().unwrap());
        }
        assert_eq!(ring.try_write(&[1; 100]), Ok(true));
        ring.reset();
        assert!(ring.read().unwrap().is_none());
        let header = ring.mapping.header();
        assert_eq!(header.head.0.load(Ordering::Relaxed), 0);
        assert_eq!(header.tail.0.load(Ordering::Relaxed), 0);
        assert_eq!(ring.try_write(&[2; 100]), Ok(true));
        assert_eq!(&*ring.read().unwrap().unwrap(), &[2; 100]);
    }
}
