//! A call's input as it is read: items encoded into chunk frames, as many
//! at a time as a chunk takes, each delimited on its own.

use serde::Serialize;

use crate::call::chunk::CHUNK_BYTES;
use crate::protocol::batch::BatchWriter;
use crate::protocol::codec;
use crate::protocol::frame::MAX_VALUE;

/// A source of items that encodes them into a chunk frame.
pub(super) trait Feed {
    /// Appends up to `max` encoded items to `buf`, recording each in
    /// `lengths`, and stopping early after [`CHUNK_BYTES`] or at an item
    /// that cannot be encoded.
    fn fill(&mut self, buf: &mut Vec<u8>, lengths: &mut BatchWriter, max: usize) -> Filled;
}

/// What one [`Feed::fill`] did.
pub(super) struct Filled {
    /// The item after the last one taken could not be encoded, for this
    /// reason.
    pub(super) unencodable: Option<String>,
    /// The input has no more items.
    pub(super) exhausted: bool,
}

impl<I> Feed for I
where
    I: Iterator,
    I::Item: Serialize,
{
    fn fill(&mut self, buf: &mut Vec<u8>, lengths: &mut BatchWriter, max: usize) -> Filled {
        let start = buf.len();
        while (lengths.count() as usize) < max && buf.len() - start < CHUNK_BYTES {
            let Some(item) = self.next() else {
                return Filled {
                    unencodable: None,
                    exhausted: true,
                };
            };
            let mark = buf.len();
            let unencodable = match codec::encode(&item, buf) {
                Err(e) => Some(e.to_string()),
                Ok(()) if buf.len() - mark > MAX_VALUE => {
                    let len = buf.len() - mark;
                    buf.truncate(mark);
                    Some(format!(
                        "it is {len} bytes, over the limit of {MAX_VALUE} bytes that one value \
                         may take"
                    ))
                }
                Ok(()) => None,
            };
            if unencodable.is_some() {
                return Filled {
                    unencodable,
                    exhausted: false,
                };
            }
            lengths.push(buf.len() - mark);
        }
        Filled {
            unencodable: None,
            exhausted: false,
        }
    }
}
