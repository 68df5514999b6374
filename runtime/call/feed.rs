//! A call's input as it is read: items encoded into chunk frames, as many
//! at a time as a chunk takes.

use serde::Serialize;

use crate::call::chunk::CHUNK_BYTES;
use crate::protocol::frame;

/// A source of items that encodes them into a chunk frame.
pub(super) trait Feed {
    /// Appends up to `max` encoded items to `buf`, stopping early after
    /// [`CHUNK_BYTES`].
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Filled;
}

/// What one [`Feed::fill`] did.
pub(super) struct Filled {
    pub(super) count: u32,
    /// The item after the last one taken could not be encoded.
    pub(super) unencodable: Option<String>,
    /// The input has no more items.
    pub(super) exhausted: bool,
}

impl<I> Feed for I
where
    I: Iterator,
    I::Item: Serialize,
{
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> Filled {
        let mut count = 0;
        while (count as usize) < max && buf.len() < CHUNK_BYTES {
            let Some(item) = self.next() else {
                return Filled {
                    count,
                    unencodable: None,
                    exhausted: true,
                };
            };
            let mark = buf.len();
            if let Err(e) = frame::encode_into(&item, buf) {
                buf.truncate(mark);
                return Filled {
                    count,
                    unencodable: Some(e.to_string()),
                    exhausted: false,
                };
            }
            count += 1;
        }
        Filled {
            count,
            unencodable: None,
            exhausted: false,
        }
    }
}
