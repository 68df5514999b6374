//! Batches: encoded values back to back, each delimited on its own. A chunk
//! carries its items' argument tuples as a batch, and a reply its items'
//! outcomes, so that one value that does not decode costs its own item only,
//! and a value whose decoding leaves bytes unread is caught.
//!
//! The layout: the values, then one varint per value giving its length in
//! bytes, then the number of values and the byte length of those varints,
//! each a little-endian `u32`. The lengths come after the values so that
//! each value is written in place, once, and measured afterwards.

use crate::protocol::codec::{push_varint, read_varint};

/// The bytes after the lengths: the count and the lengths' byte length.
const TRAILER: usize = 8;

/// The lengths of the values appended to a buffer, kept aside until
/// [`finish`](BatchWriter::finish) puts them after the values.
#[derive(Debug, Default)]
pub(crate) struct BatchWriter {
    lengths: Vec<u8>,
    count: u32,
}

impl BatchWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// How many values have been recorded.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Records a value of `len` bytes, just appended after the previous one.
    #[inline]
    pub(crate) fn push(&mut self, len: usize) {
        push_varint(&mut self.lengths, len as u32);
        self.count += 1;
    }

    /// Appends the lengths and the trailer to `out`, which holds the values,
    /// and starts afresh.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lengths);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.lengths.len() as u32).to_le_bytes());
        self.clear();
    }

    /// Forgets the values recorded, keeping its memory.
    pub(crate) fn clear(&mut self) {
        self.lengths.clear();
        self.count = 0;
    }
}

/// A batch whose lengths have been read and checked: they add up to the
/// values' bytes exactly, and there are as many as the trailer says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch<'a> {
    values: &'a [u8],
    lengths: &'a [u8],
    count: u32,
}

impl<'a> Batch<'a> {
    /// Reads a batch that takes the whole of `bytes`, or says what does not
    /// check out.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let Some(at) = bytes.len().checked_sub(TRAILER) else {
            return Err(format!("a batch of {} bytes has no trailer", bytes.len()));
        };
        let (body, trailer) = bytes.split_at(at);
        let count = u32::from_le_bytes(trailer[..4].try_into().expect("four bytes"));
        let lengths_len = u32::from_le_bytes(trailer[4..].try_into().expect("four bytes"));
        let Some(split) = body.len().checked_sub(lengths_len as usize) else {
            return Err(format!(
                "a batch's lengths take {lengths_len} bytes, more than its {} bytes",
                body.len()
            ));
        };
        let (values, lengths) = body.split_at(split);
        let (mut seen, mut total, mut rest) = (0u32, 0usize, lengths);
        while !rest.is_empty() {
            let Some((len, taken)) = read_varint(rest) else {
                return Err("a batch's lengths do not decode".into());
            };
            rest = &rest[taken..];
            seen += 1;
            total += len as usize;
        }
        if seen != count || total != values.len() {
            return Err(format!(
                "a batch says {count} values of {} bytes, but its lengths give {seen} values \
                 of {total} bytes",
                values.len()
            ));
        }
        Ok(Batch {
            values,
            lengths,
            count,
        })
    }

    /// Reads again a batch that [`parse`](Batch::parse) has checked, in
    /// this process: only its trailer is read. (Its values are still read
    /// within bounds: bytes that were not checked give wrong values or too
    /// few, never a panic.)
    pub(crate) fn reopen(bytes: &'a [u8]) -> Self {
        let at = bytes.len().saturating_sub(TRAILER);
        let (body, trailer) = bytes.split_at(at);
        let word = |i: usize| {
            trailer
                .get(i..i + 4)
                .and_then(|word| word.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        let split = body.len().saturating_sub(word(4) as usize);
        let (values, lengths) = body.split_at(split);
        Batch {
            values,
            lengths,
            count: word(0),
        }
    }

    /// How many values it holds.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Its values in order, each its own bytes.
    pub(crate) fn iter(&self) -> Values<'a> {
        Values {
            values: self.values,
            lengths: self.lengths,
        }
    }

    /// Appends the values `from..to` to `out` as a batch of their own.
    pub(crate) fn copy_range(&self, from: u32, to: u32, out: &mut Vec<u8>) {
        let mut writer = BatchWriter::new();
        for value in self
            .iter()
            .skip(from as usize)
            .take(to.saturating_sub(from) as usize)
        {
            out.extend_from_slice(value);
            writer.push(value.len());
        }
        writer.finish(out);
    }
}

/// The values of a [`Batch`], in order.
#[derive(Debug, Clone)]
pub(crate) struct Values<'a> {
    values: &'a [u8],
    lengths: &'a [u8],
}

/// How much of a batch a [`Values`] has still to take: enough for a reader
/// that keeps the bytes (not a borrow of them) to take up again where it
/// stopped, with [`Values::resume`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Left {
    values: usize,
    lengths: usize,
}

impl<'a> Values<'a> {
    /// No values.
    pub(crate) fn empty() -> Self {
        Values {
            values: &[],
            lengths: &[],
        }
    }

    /// Where it stands.
    pub(crate) fn left(&self) -> Left {
        Left {
            values: self.values.len(),
            lengths: self.lengths.len(),
        }
    }

    /// The values of the batch `bytes`, which [`Batch::parse`] took, that
    /// are `left` to take.
    pub(crate) fn resume(bytes: &'a [u8], left: Left) -> Self {
        let lengths_end = bytes.len().saturating_sub(TRAILER);
        let lengths_len = bytes
            .get(lengths_end + 4..)
            .and_then(|word| word.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize;
        let values_end = lengths_end.saturating_sub(lengths_len);
        let part = |end: usize, len: usize| bytes.get(end.saturating_sub(len)..end).unwrap_or(&[]);
        Values {
            values: part(values_end, left.values),
            lengths: part(lengths_end, left.lengths),
        }
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // A parsed batch's lengths always decode and fit; `None` otherwise
        // only guards against what `parse` already refused.
        let (len, taken) = read_varint(self.lengths)?;
        self.lengths = &self.lengths[taken..];
        let (value, rest) = self.values.split_at_checked(len as usize)?;
        self.values = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    //! Batches that do not check out are refused by `parse`, never a panic.

    use super::*;
    use crate::test_rng::Rng;

    fn batch_of(values: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer = BatchWriter::new();
        for value in values {
            out.extend_from_slice(value);
            writer.push(value.len());
        }
        writer.finish(&mut out);
        out
    }

    #[test]
    fn values_come_back_as_written_even_empty_and_long_ones() {
        let long = vec![7u8; 300];
        let values: [&[u8]; 4] = [b"", b"a", &long, b"xyz"];
        let bytes = batch_of(&values);
        let batch = Batch::parse(&bytes).unwrap();
        assert_eq!(batch.count(), 4);
        assert_eq!(batch.iter().collect::<Vec<_>>(), values);
        assert!(Batch::parse(&batch_of(&[]))
            .unwrap()
            .iter()
            .next()
            .is_none());
    }

    #[test]
    fn a_reader_takes_up_again_where_it_stopped() {
        let bytes = batch_of(&[b"zero", b"one", b"two"]);
        let mut values = Batch::parse(&bytes).unwrap().iter();
        assert_eq!(values.next(), Some(&b"zero"[..]));
        let left = values.left();
        let rest: Vec<&[u8]> = Values::resume(&bytes, left).collect();
        assert_eq!(rest, [b"one" as &[u8], b"two"]);
    }

    #[test]
    fn a_range_copies_into_a_batch_of_its_own() {
        let bytes = batch_of(&[b"zero", b"one", b"two", b"three"]);
        let mut part = Vec::new();
        Batch::parse(&bytes).unwrap().copy_range(1, 3, &mut part);
        let part = Batch::parse(&part).unwrap();
        assert_eq!(part.iter().collect::<Vec<_>>(), [b"one" as &[u8], b"two"]);
    }

    #[test]
    fn lengths_that_do_not_add_up_are_refused() {
        let mut bytes = batch_of(&[b"ab", b"cd"]);
        // The first length, 2, becomes 3: the lengths now add up to 5 of 4.
        bytes[4] = 3;
        let error = Batch::parse(&bytes).unwrap_err();
        assert!(error.contains("2 values of 4 bytes"), "{error}");
        assert!(Batch::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn random_and_mutated_batches_never_panic() {
        let mut rng = Rng::new(0xba7c4);
        let valid = batch_of(&[b"one", b"", b"three", &[9; 200]]);
        for round in 0..200_000 {
            let bytes = match round % 3 {
                0 => rng.bytes(48),
                _ => rng.mutate(&valid),
            };
            if let Ok(batch) = Batch::parse(&bytes) {
                let total: usize = batch.iter().map(<[u8]>::len).sum();
                assert!(total <= bytes.len());
                assert_eq!(batch.iter().count(), batch.count() as usize);
            }
        }
    }
}
