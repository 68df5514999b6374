//! A built closure in a worker, run over chunks of encoded items.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PanicReport;
use crate::frame;
use crate::task::CallWith;
use crate::unwind;

/// A closure rebuilt in a worker, with its types erased: it reads encoded
/// argument tuples and writes one encoded outcome per item.
pub trait Job {
    /// Runs the `count` items encoded back to back in `items`, appending one encoded
    /// outcome per item to `out`. An error means the chunk itself did not
    /// decode; a panicking item is an outcome, not an error.
    fn run_chunk(&mut self, items: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String>;
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
    fn run_chunk(&mut self, items: &[u8], count: u32, out: &mut Vec<u8>) -> Result<(), String> {
        let mut rest = items;
        for _ in 0..count {
            let (args, tail) = postcard::take_from_bytes::<Args>(rest)
                .map_err(|e| format!("an item does not decode as the function's arguments: {e}"))?;
            rest = tail;
            let mark = out.len();
            let encoded = match unwind::catch(|| self.closure.call_with(args)) {
                Ok(value) => frame::encode_into(&Outcome::Done(&value), out),
                Err(report) => frame::encode_into(&Outcome::<()>::Panicked(report), out),
            };
            if let Err(e) = encoded {
                out.truncate(mark);
                frame::encode_into(&Outcome::<()>::Unencodable(e.to_string()), out)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
