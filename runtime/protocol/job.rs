//! A built closure in a worker, run over a chunk's items: each item's
//! arguments decoded from its own bytes, its outcome written as its own
//! value.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::protocol::batch::Values;
use crate::protocol::codec;
use crate::protocol::frame::{ReplyFrame, MAX_VALUE, SEND_BYTES};
use crate::protocol::message::{encode_done, Outcome};
use crate::protocol::task::CallWith;

/// A closure rebuilt in a worker, with its types erased. Made by [`job`];
/// what a `#[remote]` factory's start function returns.
pub struct Job {
    run: Box<RunItems>,
    /// The function it comes from: a plain function's or closure's type
    /// name, or a `#[remote]` factory's name.
    name: &'static str,
}

impl Job {
    /// The closure's name, for messages about a crash.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The job, named after the function it comes from (a `#[remote]`
    /// factory's name says more than its closure's type name).
    pub(crate) fn named(self, name: &'static str) -> Job {
        Job { name, ..self }
    }

    /// Runs items `from..count` of a chunk, whose encoded argument tuples
    /// `items` yields in order from item `from`, writing one outcome per
    /// item to `out` and telling `progress` about each. Returns the next
    /// item to run: `count` when all have run, less when
    /// [`Progress::finished`] asked to stop or `out` holds
    /// [`SEND_BYTES`].
    ///
    /// A panic while an item's arguments decode, while it runs, or while
    /// its result encodes unwinds out of here; the caller catches it, and
    /// knows from `progress` which item it was and what it was doing.
    pub(crate) fn run_items(
        &mut self,
        items: &mut Values<'_>,
        from: u32,
        count: u32,
        out: &mut ReplyFrame,
        progress: &mut dyn Progress,
    ) -> u32 {
        (self.run)(items, from, count, out, progress)
    }
}

/// What [`Job::run_items`] says of each item.
pub(crate) trait Progress {
    /// Item `n` of the chunk starts: its arguments decode now. Its outcome
    /// will start at byte `mark` of the reply.
    fn started(&mut self, n: u32, mark: usize);

    /// The item's arguments have decoded; it runs now.
    fn decoded(&mut self);

    /// Item `n` has run and its outcome is written; true to stop here.
    fn finished(&mut self, n: u32) -> bool;
}

/// The typed loop behind a [`Job`], with its types erased.
type RunItems = dyn FnMut(&mut Values<'_>, u32, u32, &mut ReplyFrame, &mut dyn Progress) -> u32;

/// Wraps a closure taking the argument tuple `Args` as a [`Job`].
///
/// `Args` need not be `'static`: the erased loop holds only the closure.
pub fn job<Args, C>(mut closure: C) -> Job
where
    C: CallWith<Args> + 'static,
    C::Output: Serialize,
    Args: DeserializeOwned,
{
    Job {
        run: Box::new(move |items, from, count, out, progress| {
            run_items::<Args, C>(&mut closure, items, from, count, out, progress)
        }),
        name: std::any::type_name::<C>(),
    }
}

/// Runs items `n..count` through `closure`: see [`Job::run_items`].
fn run_items<Args, C>(
    closure: &mut C,
    items: &mut Values<'_>,
    mut n: u32,
    count: u32,
    out: &mut ReplyFrame,
    progress: &mut dyn Progress,
) -> u32
where
    C: CallWith<Args>,
    C::Output: Serialize,
    Args: DeserializeOwned,
{
    while n < count {
        let Some(bytes) = items.next() else { break };
        let (buf, mark) = out.outcome();
        progress.started(n, mark);
        match codec::decode::<Args>(bytes) {
            Ok(args) => {
                progress.decoded();
                let value = closure.call_with(args);
                let failed = match encode_done(&value, buf) {
                    Err(e) => Some(e.to_string()),
                    Ok(()) if buf.len() - mark > MAX_VALUE => {
                        let len = buf.len() - mark;
                        buf.truncate(mark);
                        Some(format!(
                            "the result is {len} bytes, over the limit of {MAX_VALUE} bytes \
                             that one value may take"
                        ))
                    }
                    Ok(()) => None,
                };
                if let Some(reason) = failed {
                    codec::encode(&Outcome::<()>::Unencodable(reason), buf)
                        .expect("an error outcome always encodes");
                }
            }
            Err(e) => codec::encode(&Outcome::<()>::Undecodable(e.to_string()), buf)
                .expect("an error outcome always encodes"),
        }
        out.end_outcome(mark);
        n += 1;
        if progress.finished(n - 1) || out.bytes() >= SEND_BYTES {
            break;
        }
    }
    n
}
