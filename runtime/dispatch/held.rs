//! The chunks a worker holds, and what a worker's death means for them:
//! which item is charged, and which run again.

use std::sync::Arc;

use crate::backend::Ending;
use crate::dispatch::work::{Call, Chunk, Reply};
use crate::platform::board::{Doing, Item, INITIALIZER};
use crate::platform::Death;
use crate::protocol::batch::Batch;
use crate::protocol::frame;
use crate::protocol::message::{Failure, ToWorker};

/// A chunk a worker holds.
pub(super) struct Held {
    pub(super) call: Arc<Call>,
    pub(super) chunk: Chunk,
    /// How many of its items have been replied to.
    pub(super) done: u32,
}

impl Held {
    /// The index of the first item not replied to, and the end of the chunk.
    fn rest(&self) -> (u64, u64) {
        let first = self.chunk.first;
        (
            first + u64::from(self.done),
            first + u64::from(self.chunk.count),
        )
    }

    /// A failure of every item not replied to.
    pub(super) fn fail_rest(&self, failure: Failure) -> Reply {
        let (first, end) = self.rest();
        Reply::Failed {
            first,
            count: (end - first) as u32,
            failure,
        }
    }

    /// What the end of the worker running this chunk means, given what it
    /// last posted on its board: the replies that fail items, while the
    /// items to run again go to `again`.
    ///
    /// A worker that died while it ran an item is charged to that item;
    /// items of the chunk that ran before it, and whose results died with the
    /// worker, run again, and so do the items after it. A worker that died
    /// building the call's closure fails the whole rest of the chunk, and so
    /// does one that died before it ever replied or ran an item (it could not
    /// even start). A worker that died between items (while it sent results,
    /// say), or broke the protocol, did so for one of the items it had run
    /// and not replied to, or for none: when that is one item, it is
    /// charged; when several, they run again one by one, so that a second
    /// death is charged to the one that caused it. A worker that broke the
    /// protocol while it ran an item of a later chunk had run all of this
    /// one: it runs again, uncharged. A worker whose board was left mid-post
    /// (a task wrote over it) says nothing of what it ran: its items run
    /// again one by one, and an item alone is charged. A worker the dispatcher
    /// killed is charged the reason with what it was doing when the kill was
    /// decided, if it still did that; a timeout decided while it ran no item
    /// of the chunk (it was stopped, or stuck reading one) is charged to the
    /// first item not replied to; otherwise it is nobody's fault, and what it
    /// had not replied to runs again.
    pub(super) fn after_end(
        &self,
        ending: &Ending,
        cause: Cause,
        replied: bool,
        again: &mut Vec<Chunk>,
    ) -> Vec<Reply> {
        let (first, end) = self.rest();
        let mut failed = Vec::new();
        let mut rerun = |from: u64, to: u64| {
            if from < to {
                match self.part(from, to) {
                    Some(chunk) => again.push(chunk),
                    None => failed.push(Reply::Failed {
                        first: from,
                        count: (to - from) as u32,
                        failure: Failure::Codec("the chunk could not be cut to run again".into()),
                    }),
                }
            }
        };
        let in_chunk =
            |item: &Item| item.call == self.call.id && (first..end).contains(&item.index);
        let doing = ending.doing;
        // The last item of this chunk the worker started, if it started one
        // not replied to.
        let last = ending.last.filter(in_chunk).map(|item| item.index);
        let failure = match cause {
            Cause::Killed { doing: decided, .. } if decided != doing => None,
            Cause::Killed { why, .. } => Some(why),
            Cause::Died(death) => Some(Failure::Died(death)),
            Cause::Broke(reason) => Some(Failure::Codec(format!(
                "the worker's reply did not check out: {reason}"
            ))),
        };
        let charge = |index: u64, failure: Failure| Reply::Failed {
            first: index,
            count: 1,
            failure,
        };
        match (doing, failure) {
            (Doing::Running(item), Some(failure)) if in_chunk(&item) => {
                rerun(first, item.index);
                rerun(item.index + 1, end);
                failed.push(charge(item.index, failure));
            }
            (Doing::SettingUp { call, .. }, Some(failure))
                if call == self.call.id || call == INITIALIZER =>
            {
                failed.push(self.fail_rest(match failure {
                    Failure::Died(death) => Failure::DiedSettingUp {
                        death,
                        initializer: call == INITIALIZER,
                    },
                    other => other,
                }));
            }
            // Its board was left mid-post (a task wrote over it, then the
            // worker died): who did it is not known. The items not replied
            // to run again one by one, and an item alone is charged.
            (_, Some(failure @ (Failure::Died(_) | Failure::Codec(_)))) if ending.torn => {
                if end - first == 1 {
                    failed.push(charge(first, failure));
                } else {
                    (first..end).for_each(|index| rerun(index, index + 1));
                }
            }
            // It was running an item of a later chunk: it had run all of
            // this one, whose reply was lost (a task of the later chunk
            // scribbled over it). This chunk runs again; the later one is
            // charged, if its item does it again, when it is the first.
            (Doing::Running(_), Some(Failure::Died(_) | Failure::Codec(_))) => rerun(first, end),
            (_, Some(failure @ (Failure::Died(_) | Failure::Codec(_)))) => match last {
                Some(last) if last == first => {
                    rerun(first + 1, end);
                    failed.push(charge(first, failure));
                }
                Some(last) => {
                    for index in first..=last {
                        rerun(index, index + 1);
                    }
                    rerun(last + 1, end);
                }
                None if !replied => failed.push(self.fail_rest(failure)),
                None => rerun(first, end),
            },
            // It ran past its time without starting the next item (stopped,
            // or stuck reading it): that item is charged.
            (_, Some(failure @ Failure::TimedOut(_))) => {
                rerun(first + 1, end);
                failed.push(charge(first, failure));
            }
            _ => rerun(first, end),
        }
        failed
    }

    /// A chunk of the items `from..to` of this one (absolute indices).
    fn part(&self, from: u64, to: u64) -> Option<Chunk> {
        let (header, tail) = frame::split::<ToWorker<'_>>(&self.chunk.frame[4..]).ok()?;
        let ToWorker::Chunk { call, first } = header else {
            return None;
        };
        let items = Batch::parse(tail).ok()?;
        let count = u32::try_from(to - from).ok()?;
        let mut buf = Vec::with_capacity(self.chunk.frame.len());
        frame::begin(&mut buf, &ToWorker::Chunk { call, first: from });
        let skip = u32::try_from(from.checked_sub(first)?).ok()?;
        items.copy_range(skip, skip + count, &mut buf);
        frame::finish(&mut buf).ok()?;
        Some(Chunk {
            call,
            first: from,
            count,
            frame: Arc::new(buf),
        })
    }
}

/// Why a worker ended.
#[derive(Debug, Clone)]
pub(super) enum Cause {
    /// By itself: an exit, a signal.
    Died(Death),
    /// It sent bytes that are not a reply, for this reason, and was ended.
    Broke(String),
    /// The dispatcher killed it while it was `doing` something, because
    /// that went past a limit: the failure to charge it with.
    Killed { doing: Doing, why: Failure },
}
