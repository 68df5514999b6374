//! A built closure in a worker, run over chunks of encoded items.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PanicReport;
use crate::frame;
use crate::task::CallWith;
use crate::unwind;

/// A closure rebuilt in a worker, with its types erased: it reads encoded
/// argument tuples one at a time and writes one encoded outcome per item.
pub trait Job {
    /// Decodes the arguments of the item at the front of `items` and keeps
    /// them for [`run`](Job::run); returns how many bytes they took. An
    /// error means the item does not decode.
    fn take(&mut self, items: &[u8]) -> Result<usize, String>;

    /// Runs the closure on the item taken last, appending its outcome to
    /// `out`. A panicking item is an outcome, not an error; an error means
    /// not even the outcome could be encoded.
    fn run(&mut self, out: &mut Vec<u8>) -> Result<(), String>;
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
        args: None,
    })
}

struct ClosureJob<C, Args> {
    closure: C,
    /// The arguments taken and not yet run.
    args: Option<Args>,
}

impl<C, Args> Job for ClosureJob<C, Args>
where
    C: CallWith<Args>,
    C::Output: Serialize,
    Args: DeserializeOwned,
{
    fn take(&mut self, items: &[u8]) -> Result<usize, String> {
        let (args, rest) = postcard::take_from_bytes::<Args>(items)
            .map_err(|e| format!("an item does not decode as the function's arguments: {e}"))?;
        self.args = Some(args);
        Ok(items.len() - rest.len())
    }

    fn run(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let args = self
            .args
            .take()
            .ok_or("an item was run before it was taken")?;
        let mark = out.len();
        let encoded = match unwind::catch(|| self.closure.call_with(args)) {
            Ok(value) => encode_done(&value, out),
            Err(report) => frame::encode_into(&Outcome::<()>::Panicked(report), out),
        };
        if let Err(e) = encoded {
            out.truncate(mark);
            frame::encode_into(&Outcome::<()>::Unencodable(e.to_string()), out)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
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
        }))
        .unwrap();
        assert!(matches!(
            decode_outcome::<u64>(&panicked).unwrap().0,
            Outcome::Panicked(report) if report.message == "no"
        ));
    }
}
