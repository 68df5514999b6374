//! A built closure in a worker, run over chunks of encoded items.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PanicReport;
use crate::protocol::frame;
use crate::protocol::task::CallWith;

/// A closure rebuilt in a worker, with its types erased: it reads encoded
/// argument tuples and writes one encoded outcome per item.
pub trait Job {
    /// Runs the items of a chunk from item `from`, whose encoded arguments
    /// start at byte `at` of `items`, up to item `count`, appending one
    /// encoded outcome per item to `out` and telling `progress` about each.
    /// Returns the next item to run and where its arguments start: `count`
    /// when all have run, less when [`Progress::finished`] asked to stop.
    ///
    /// A panic while an item's arguments decode, while it runs, or while
    /// its result encodes unwinds out of here; the caller catches it, and
    /// knows from `progress` which item it was.
    fn run_items(
        &mut self,
        items: &[u8],
        from: u32,
        at: usize,
        count: u32,
        out: &mut Vec<u8>,
        progress: &mut dyn Progress,
    ) -> Result<(u32, usize), Undecodable>;
}

/// What the loop of [`Job::run_items`] says of each item.
pub trait Progress {
    /// Item `n` of the chunk has decoded from `start..end` of the chunk's
    /// items, and runs now; its outcome will start at byte `mark` of the
    /// output.
    fn started(&mut self, n: u32, start: usize, end: usize, mark: usize);

    /// Item `n` has run and its outcome is written; true to stop here.
    fn finished(&mut self, n: u32) -> bool;
}

/// Item `n` of a chunk, whose arguments start at byte `at`, does not decode.
#[derive(Debug)]
pub struct Undecodable {
    pub(crate) n: u32,
    pub(crate) at: usize,
    pub(crate) reason: String,
}

/// The result of one item, as it travels back to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<T> {
    /// The closure returned this value.
    Done(T),
    /// The closure panicked.
    Panicked(PanicReport),
    /// The closure returned, but its value could not be encoded.
    Unencodable(String),
}

/// The byte postcard writes for the variant [`Outcome::Done`]: its index.
const DONE: u8 = 0;

/// Appends the encoding of `Outcome::Done(value)`, the same bytes serde's
/// derive writes, without going through the enum: this runs once per item.
fn encode_done<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    out.push(DONE);
    frame::encode_into(value, out)
}

/// Reads one outcome from the front of `bytes`; returns the rest. A `Done`
/// outcome, the common one, is read without going through the enum.
pub(crate) fn decode_outcome<O: DeserializeOwned>(
    bytes: &[u8],
) -> postcard::Result<(Outcome<O>, &[u8])> {
    match bytes.split_first() {
        Some((&DONE, rest)) => {
            let (value, rest) = postcard::take_from_bytes(rest)?;
            Ok((Outcome::Done(value), rest))
        }
        _ => postcard::take_from_bytes(bytes),
    }
}

/// Wraps a closure taking the argument tuple `Args` as a [`Job`].
pub fn job<Args, C>(closure: C) -> Box<dyn Job>
where
    C: CallWith<Args> + 'static,
    C::Output: Serialize,
    Args: DeserializeOwned + 'static,
{
    Box::new(ClosureJob {
        closure,
        args: PhantomData,
    })
}

struct ClosureJob<C, Args> {
    closure: C,
    args: PhantomData<fn(Args)>,
}

impl<C, Args> Job for ClosureJob<C, Args>
where
    C: CallWith<Args>,
    C::Output: Serialize,
    Args: DeserializeOwned,
{
    fn run_items(
        &mut self,
        items: &[u8],
        from: u32,
        mut at: usize,
        count: u32,
        out: &mut Vec<u8>,
        progress: &mut dyn Progress,
    ) -> Result<(u32, usize), Undecodable> {
        let mut n = from;
        while n < count {
            let (args, rest) =
                postcard::take_from_bytes::<Args>(&items[at..]).map_err(|e| Undecodable {
                    n,
                    at,
                    reason: format!("an item does not decode as the function's arguments: {e}"),
                })?;
            let end = items.len() - rest.len();
            let mark = out.len();
            progress.started(n, at, end, mark);
            let value = self.closure.call_with(args);
            if let Err(e) = encode_done(&value, out) {
                out.truncate(mark);
                // A `Vec` takes any outcome; only `value` could fail.
                frame::encode_into(&Outcome::<()>::Unencodable(e.to_string()), out)
                    .expect("an error outcome always encodes");
            }
            at = end;
            n += 1;
            if progress.finished(n - 1) {
                break;
            }
        }
        Ok((n, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_encoding_of_done_is_the_enums() {
        for value in [0u64, 1, 300, u64::MAX] {
            let mut quick = Vec::new();
            encode_done(&value, &mut quick).unwrap();
            assert_eq!(quick, postcard::to_stdvec(&Outcome::Done(value)).unwrap());
            let (decoded, rest) = decode_outcome::<u64>(&quick).unwrap();
            assert!(matches!(decoded, Outcome::Done(v) if v == value));
            assert!(rest.is_empty());
        }
        let panicked = postcard::to_stdvec(&Outcome::<u64>::Panicked(PanicReport {
            message: "no".into(),
            location: None,
            backtrace: None,
        }))
        .unwrap();
        assert!(matches!(
            decode_outcome::<u64>(&panicked).unwrap().0,
            Outcome::Panicked(report) if report.message == "no"
        ));
    }
}
