//! Frames: how messages travel on a byte stream, and their size caps.
//!
//! A frame is a little-endian `u32` length, then a body: a message
//! ([`crate::protocol::message`]) encoded by the codec, then a tail of raw
//! bytes whose meaning the message gives. Lengths are capped at
//! [`MAX_FRAME`]; a frame that does not check out is an error, and a reader
//! never allocates more than twice what it actually received.

use std::io::{self, ErrorKind, Read};
use std::mem;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::protocol::batch::BatchWriter;
use crate::protocol::codec::{self, CodecError};
use crate::protocol::message::{FromWorker, MAX_DONE_HEADER};

/// The largest frame body, in bytes.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// The largest encoded value (an item's arguments, or its outcome): room is
/// left in a frame for the values sent with it, which stop being added
/// beyond [`SEND_BYTES`].
pub(crate) const MAX_VALUE: usize = MAX_FRAME - 2 * SEND_BYTES;

/// A frame that holds this many bytes of values is sent without waiting
/// for more: a reply fits in half of a ring of the default size (1 MiB).
pub(crate) const SEND_BYTES: usize = 256 << 10;

/// A frame that does not check out.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME} bytes")]
    TooLong(usize),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("a frame's header does not decode: {0}")]
    Header(CodecError),
    #[error("a frame's values do not check out: {0}")]
    Batch(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Starts a frame in `buf` (cleared first) with `header`; append the tail,
/// then call [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>, header: &impl Serialize) {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    // A header is integers, strings and a panic report: they encode into a
    // `Vec` without fail.
    codec::encode(header, buf).expect("a frame header always encodes");
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

/// A [`FromWorker::Done`] frame being written: its outcomes go in first, as
/// a batch, and its header, once their number is known, right before
/// them, in room kept for the longest header, so nothing is copied.
#[derive(Debug)]
pub(crate) struct ReplyFrame {
    buf: Vec<u8>,
    lengths: BatchWriter,
    /// Where the header is encoded before it is put in place.
    header: Vec<u8>,
}

const ROOM: usize = 4 + MAX_DONE_HEADER;

impl ReplyFrame {
    pub(crate) fn new() -> Self {
        ReplyFrame {
            buf: vec![0; ROOM],
            lengths: BatchWriter::new(),
            header: Vec::with_capacity(MAX_DONE_HEADER),
        }
    }

    /// Starts a new frame.
    pub(crate) fn reset(&mut self) {
        self.buf.truncate(ROOM);
        self.lengths.clear();
    }

    /// How many bytes of outcomes it holds.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len() - ROOM
    }

    /// Where the next outcome goes, and where it starts.
    #[inline]
    pub(crate) fn outcome(&mut self) -> (&mut Vec<u8>, usize) {
        let mark = self.buf.len();
        (&mut self.buf, mark)
    }

    /// Drops what was written from `mark` on (part of an outcome), for
    /// another outcome to go there.
    pub(crate) fn rewrite_outcome(&mut self, mark: usize) -> &mut Vec<u8> {
        self.buf.truncate(mark.max(ROOM));
        &mut self.buf
    }

    /// The outcomes written so far, back to back.
    pub(crate) fn outcomes(&self) -> &[u8] {
        &self.buf[ROOM..]
    }

    /// Records the outcome written since `mark`.
    #[inline]
    pub(crate) fn end_outcome(&mut self, mark: usize) {
        self.lengths.push(self.buf.len() - mark);
    }

    /// Writes the lengths after the outcomes, and a `Done` header and the
    /// length in front of them, and returns the whole frame.
    pub(crate) fn seal(&mut self, call: u64, first: u64) -> Result<&[u8], FrameError> {
        let header = FromWorker::Done {
            call,
            first,
            count: self.lengths.count(),
        };
        self.lengths.finish(&mut self.buf);
        let encoded = &mut self.header;
        encoded.clear();
        codec::encode(&header, encoded).map_err(FrameError::Header)?;
        let len = self.buf.len() - ROOM + encoded.len();
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        let start = ROOM - encoded.len() - 4;
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 4..ROOM].copy_from_slice(encoded);
        Ok(&self.buf[start..])
    }
}

/// Splits a frame body into its header and its tail.
pub(crate) fn split<'a, H: Deserialize<'a>>(body: &'a [u8]) -> Result<(H, &'a [u8]), FrameError> {
    codec::decode_prefix(body).map_err(FrameError::Header)
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

    /// A frame's body, which came without its length prefix (as a message
    /// of its own).
    pub(crate) fn from_body(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        Received {
            bytes,
            body: 0..end,
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

    /// Whether it holds no byte of a frame.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
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
    use crate::protocol::message::ToWorker;
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
