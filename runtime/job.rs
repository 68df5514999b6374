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
            Ok(value) => frame::encode_into(&Outcome::Done(&value), out),
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
