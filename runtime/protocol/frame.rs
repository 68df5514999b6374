//! Frames: what parent and workers say to each other.
//!
//! A frame is a little-endian `u32` length, then a postcard-encoded header
//! (whose enum variant is the frame's kind), then a tail of raw bytes whose
//! meaning the header gives: the factory's arguments, a chunk of encoded
//! items, or a chunk of encoded outcomes. Lengths are capped at
//! [`MAX_FRAME`]; a frame that does not check out is an error, and a reader
//! never allocates more than twice what it actually received.

use std::io::{self, ErrorKind, Read};
use std::mem;
use std::ops::Range;

use postcard::ser_flavors::Flavor;
use serde::{Deserialize, Serialize};

use crate::error::PanicReport;
use crate::protocol::entry::Entry;

/// The largest frame body, in bytes.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// What the parent says to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// Build the closure of this call; the tail is the task's setup data.
    /// `timed`: the call has a timeout, so post each item's start time.
    Call {
        call: u64,
        #[serde(borrow)]
        entry: Entry<'a>,
        timed: bool,
    },
    /// Build the initializer and run it once; the tail is its setup data.
    /// Sent first to every new worker of a pool that has one.
    Init {
        #[serde(borrow)]
        entry: Entry<'a>,
    },
    /// Run items of the call, numbered from `first`; the tail holds their
    /// encoded argument tuples back to back, then their count as a
    /// little-endian `u32` (a tuple of no arguments encodes to no bytes).
    Chunk { call: u64, first: u64 },
}

/// What a worker says to the parent: replies that together cover each
/// chunk's items in order, one or more per chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// `count` items from `first` ran; the tail holds one encoded outcome
    /// per item. `upto` is where the next item's arguments start among the
    /// chunk's encoded items.
    Done {
        call: u64,
        first: u64,
        count: u32,
        upto: u32,
    },
    /// `count` items from `first` could not run.
    Refused {
        call: u64,
        first: u64,
        count: u32,
        reason: Refusal,
    },
}

/// The longest encoding of a [`FromWorker::Done`] header: a variant tag and
/// four varints.
const MAX_DONE_HEADER: usize = 1 + 10 + 10 + 5 + 5;

/// Why a worker could not run a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The factory body panicked while building the closure.
    FactoryPanicked(PanicReport),
    /// The function or the data did not check out.
    Unrunnable(String),
    /// The pool's initializer failed in this worker.
    Initializer(String),
    /// This item's arguments do not decode (or their decoding panicked),
    /// so neither it nor the items after it in its chunk can be read.
    Undecodable(String),
}

/// A frame that does not check out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLong(usize),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("a frame's header does not decode: {0}")]
    Header(postcard::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Appends the postcard encoding of `value` to `out`.
#[inline]
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, Append(out))
}

struct Append<'a>(&'a mut Vec<u8>);

impl Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        // Most pieces are a varint of a few bytes: copying them byte by byte
        // into the spare room is several times cheaper than `memcpy`.
        if bytes.len() <= 16 {
            self.0.reserve(bytes.len());
            for &byte in bytes {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Starts a frame in `buf` (cleared first) with `header`; append the tail,
/// then call [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>, header: &impl Serialize) {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    // A header is integers, strings and a panic report: postcard encodes
    // those into a `Vec` without fail.
    encode_into(header, buf).expect("a frame header always encodes");
}

/// Writes the length of a frame started with [`begin`].
pub(crate) fn finish(buf: &mut [u8]) -> Result<(), FrameError> {
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// A reply frame whose header is written after its tail, once the tail's
/// item count is known: room for the longest header is kept in front, and
/// the header is placed right before the tail, so nothing is copied.
#[derive(Debug)]
pub(crate) struct DoneFrame {
    buf: Vec<u8>,
}

const ROOM: usize = 4 + MAX_DONE_HEADER;

impl DoneFrame {
    pub(crate) fn new() -> Self {
        DoneFrame { buf: vec![0; ROOM] }
    }

    /// Starts a new frame.
    pub(crate) fn reset(&mut self) {
        self.buf.truncate(ROOM);
    }

    /// Where the tail goes.
    pub(crate) fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes a [`FromWorker::Done`] header and the length in front of the
    /// tail, and returns the whole frame.
    pub(crate) fn seal_done(
        &mut self,
        call: u64,
        first: u64,
        count: u32,
        upto: u32,
    ) -> Result<&[u8], FrameError> {
        let header = FromWorker::Done {
            call,
            first,
            count,
            upto,
        };
        let mut encoded = [0; MAX_DONE_HEADER];
        let header_len = postcard::to_slice(&header, &mut encoded)
            .map_err(FrameError::Header)?
            .len();
        let len = self.buf.len() - ROOM + header_len;
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        let start = ROOM - header_len - 4;
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 4..ROOM].copy_from_slice(&encoded[..header_len]);
        Ok(&self.buf[start..])
    }
}

/// Splits a frame body into its header and its tail.
pub(crate) fn split<'a, H: Deserialize<'a>>(body: &'a [u8]) -> Result<(H, &'a [u8]), FrameError> {
    postcard::take_from_bytes(body).map_err(FrameError::Header)
}

/// Reads one frame body into `buf`, blocking. `Ok(false)` means the peer
/// closed the connection between frames.
pub(crate) fn read_blocking(source: &mut impl Read, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    let mut prefix = [0; 4];
    let mut got = 0;
    while got < 4 {
        match source.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    buf.clear();
    buf.reserve(len.min(READ_SIZE));
    source.take(len as u64).read_to_end(buf)?;
    if buf.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(true)
}

/// How much a reader asks for at a time, and the size above which a frame is
/// handed over without a copy.
const READ_SIZE: usize = 64 * 1024;

/// A frame received by an [`Inbox`].
#[derive(Debug)]
pub(crate) struct Received {
    bytes: Vec<u8>,
    body: Range<usize>,
}

impl Received {
    /// A whole frame, length prefix first, as [`begin`] and [`finish`] make it.
    pub(crate) fn whole(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        Received {
            bytes,
            body: 4.min(end)..end,
        }
    }

    /// The frame's body: header and tail.
    pub(crate) fn body(&self) -> &[u8] {
        &self.bytes[self.body.clone()]
    }
}

/// Reassembles frames from a non-blocking byte stream.
#[derive(Debug)]
pub(crate) struct Inbox {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

/// What one read of an [`Inbox`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Some bytes arrived.
    Data,
    /// Nothing is available now.
    Empty,
    /// The peer closed the connection.
    Closed,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            storage: vec![0; READ_SIZE],
            start: 0,
            end: 0,
        }
    }

    /// Reads once from a non-blocking source.
    pub(crate) fn fill(&mut self, source: &mut impl Read) -> io::Result<Fill> {
        if self.end == self.storage.len() {
            self.make_room();
        }
        loop {
            return match source.read(&mut self.storage[self.end..]) {
                Ok(0) => Ok(Fill::Closed),
                Ok(n) => {
                    self.end += n;
                    Ok(Fill::Data)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Fill::Empty),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Takes the next complete frame, if one has arrived.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Received>, FrameError> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        let frame_end = self.start + 4 + len;
        if frame_end > self.end {
            return Ok(None);
        }
        let received = if self.start == 0 && frame_end == self.end && len >= READ_SIZE {
            let bytes = mem::replace(&mut self.storage, vec![0; READ_SIZE]);
            Received {
                bytes,
                body: 4..frame_end,
            }
        } else {
            Received {
                bytes: self.storage[self.start + 4..frame_end].to_vec(),
                body: 0..len,
            }
        };
        self.start = frame_end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(received))
    }

    /// The body length of the frame at `start`, once its prefix has arrived.
    fn pending_len(&self) -> Result<Option<usize>, FrameError> {
        if self.end - self.start < 4 {
            return Ok(None);
        }
        let prefix = self.storage[self.start..self.start + 4]
            .try_into()
            .expect("four bytes");
        let len = u32::from_le_bytes(prefix) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        Ok(Some(len))
    }

    /// Moves the unfinished frame to the front, and grows the storage toward
    /// the frame's size, at most doubling it, when it still does not fit.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.storage.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.storage.len() {
            let needed = match self.pending_len() {
                Ok(Some(len)) => 4 + len,
                _ => self.storage.len() + READ_SIZE,
            };
            let grown = (self.storage.len() * 2).min(needed.max(self.storage.len() + READ_SIZE));
            self.storage.resize(grown, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Frames that do not check out: a reader returns an error or waits for
    //! more bytes, and never panics, aborts, or allocates much more than it
    //! was sent.

    use super::*;
    use crate::test_rng::Rng;

    /// Reads a byte stream in pieces of random sizes.
    struct Pieces<'a> {
        bytes: &'a [u8],
        rng: Rng,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.bytes.is_empty() {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = (1 + self.rng.below(self.bytes.len())).min(buf.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// A stream of a few frames: small length prefixes (some of them lies)
    /// or random ones, and random bodies.
    fn stream(rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.below(4) {
            let len = if rng.below(4) == 0 {
                rng.next() as u32
            } else {
                rng.below(96) as u32
            };
            out.extend_from_slice(&len.to_le_bytes());
            out.extend(rng.bytes(128));
        }
        out
    }

    fn headers_do_not_panic(body: &[u8]) {
        let _ = split::<FromWorker>(body);
        let _ = split::<ToWorker<'_>>(body);
    }

    #[test]
    fn random_streams_never_panic_or_overallocate() {
        let mut rng = Rng::new(0x5eed);
        for _ in 0..300_000 {
            let bytes = stream(&mut rng);
            let mut inbox = Inbox::new();
            let mut source = Pieces {
                bytes: &bytes,
                rng: Rng::new(rng.next()),
            };
            'reading: while inbox.fill(&mut source).unwrap() == Fill::Data {
                loop {
                    match inbox.next_frame() {
                        Ok(Some(frame)) => headers_do_not_panic(frame.body()),
                        Ok(None) => break,
                        Err(_) => break 'reading,
                    }
                }
            }
            assert!(inbox.storage.len() <= READ_SIZE + 2 * bytes.len());

            let mut buf = Vec::new();
            let mut reader = &bytes[..];
            while let Ok(true) = read_blocking(&mut reader, &mut buf) {
                headers_do_not_panic(&buf);
            }
            assert!(buf.capacity() <= READ_SIZE + 2 * bytes.len());
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_anything_is_allocated() {
        let mut prefix = &u32::MAX.to_le_bytes()[..];
        let mut buf = Vec::new();
        assert!(matches!(
            read_blocking(&mut prefix, &mut buf),
            Err(FrameError::TooLong(_))
        ));
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn random_headers_never_panic() {
        let mut rng = Rng::new(0xbadf00d);
        for _ in 0..300_000 {
            let body = rng.bytes(48);
            headers_do_not_panic(&body);
        }
    }
}
