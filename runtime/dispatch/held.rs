//! The chunks a worker holds, and what a worker's death means for them:
//! which item is charged, and which run again.

use std::sync::Arc;

use crate::backend::Ending;
use crate::dispatch::work::{Call, Chunk, Reply, Suspect};
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
    /// blamed (see [`Verdict::blame`]); when several, they run again one by
    /// one, so that a second death is charged to the one that caused it. A
    /// worker that broke the
    /// protocol while it ran an item of a later chunk had run all of this
    /// one: it runs again, uncharged. A worker whose board was left mid-post
    /// (a task wrote over it) says nothing of what it ran: its items run
    /// again one by one, and an item alone is blamed. One that lived on
    /// after its link closed (a task closed one of its descriptors), and
    /// was killed for it, is judged as one that died between items, since
    /// the item it ran then may not be the one that closed the link; or as
    /// one that died setting up, if it was. A worker the dispatcher
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
        let mut verdict = Verdict {
            held: self,
            again,
            failed: Vec::new(),
            replied,
        };
        let in_chunk =
            |item: &Item| item.call == self.call.id && (first..end).contains(&item.index);
        let doing = ending.doing;
        // The last item of this chunk the worker started, if it started one
        // not replied to.
        let last = ending.last.filter(in_chunk).map(|item| item.index);
        // A worker that lived on after its link closed was killed for it:
        // the item it ran then did not necessarily close the link. It is
        // judged as one that died between items: by the last item it
        // started.
        let lingered = ending.lingered && matches!(cause, Cause::Died(_));
        let failure = match cause {
            Cause::Killed { doing: decided, .. } if decided != doing => None,
            Cause::Killed { why, .. } => Some(why),
            Cause::Died(_) if lingered => Some(Failure::Codec(
                "its worker's link to the pool closed while the worker still ran (a task \
                 closed or replaced one of the worker's descriptors), so the pool ended it"
                    .into(),
            )),
            Cause::Died(death) => Some(Failure::Died(death)),
            Cause::Broke(reason) => Some(Failure::Codec(format!(
                "the worker's reply did not check out: {reason}"
            ))),
        };
        match (doing, failure) {
            // Its board was left mid-post (a task wrote over it, then the
            // worker died): who did it is not known. The items not replied
            // to run again one by one, and an item alone is blamed.
            (_, Some(failure @ (Failure::Died(_) | Failure::Codec(_)))) if ending.torn => {
                match end - first {
                    1 => verdict.blame(first, failure),
                    _ => (first..end).for_each(|index| verdict.rerun(index, index + 1)),
                }
            }
            (Doing::Running(item), Some(failure)) if in_chunk(&item) && !lingered => {
                verdict.rerun(first, item.index);
                verdict.rerun(item.index + 1, end);
                verdict.charge(item.index, failure);
            }
            // It lived on after its link closed while it set this call up,
            // having replied before: an item it ran before may have closed
            // the link. The chunk runs once more, and fails the next time.
            (Doing::SettingUp { call, .. }, Some(_))
                if lingered
                    && replied
                    && self.chunk.suspect != Some(Suspect::SetUp)
                    && call == self.call.id =>
            {
                verdict.rerun_suspect(first, end, Suspect::SetUp)
            }
            (Doing::SettingUp { call, .. }, Some(failure))
                if call == self.call.id || call == INITIALIZER =>
            {
                verdict.failed.push(self.fail_rest(match failure {
                    Failure::Died(death) => Failure::DiedSettingUp {
                        death,
                        initializer: call == INITIALIZER,
                    },
                    other => other,
                }));
            }
            // It was running an item of a later chunk: it had run all of
            // this one, whose reply was lost (a task of the later chunk
            // scribbled over it). This chunk runs again; the later one is
            // charged, if its item does it again, when it is the first.
            (Doing::Running(item), Some(Failure::Died(_) | Failure::Codec(_)))
                if !in_chunk(&item) =>
            {
                verdict.rerun(first, end)
            }
            (_, Some(failure @ (Failure::Died(_) | Failure::Codec(_)))) => match last {
                Some(last) if last == first => {
                    verdict.blame(first, failure);
                    verdict.rerun(first + 1, end);
                }
                Some(last) => {
                    for index in first..=last {
                        verdict.rerun(index, index + 1);
                    }
                    verdict.rerun(last + 1, end);
                }
                None if !replied => verdict.failed.push(self.fail_rest(failure)),
                None => verdict.rerun(first, end),
            },
            // It ran past its time without starting the next item (stopped,
            // or stuck reading it): that item is charged.
            (_, Some(failure @ Failure::TimedOut(_))) => {
                verdict.rerun(first + 1, end);
                verdict.charge(first, failure);
            }
            _ => verdict.rerun(first, end),
        }
        verdict.failed
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
            suspect: None,
        })
    }
}

/// What [`Held::after_end`] decides for the items of a chunk not replied to.
struct Verdict<'a> {
    held: &'a Held,
    /// The chunks to run again.
    again: &'a mut Vec<Chunk>,
    /// The replies that fail items.
    failed: Vec<Reply>,
    /// Whether the worker had replied to anything before it ended.
    replied: bool,
}

impl Verdict<'_> {
    /// Runs the items `from..to` again, in one chunk.
    fn rerun(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        match self.held.part(from, to) {
            Some(chunk) => self.again.push(chunk),
            None => self.failed.push(Reply::Failed {
                first: from,
                count: (to - from) as u32,
                failure: Failure::Codec("the chunk could not be cut to run again".into()),
            }),
        }
    }

    /// Runs the items `from..to` again, in one chunk suspected of `what`:
    /// it is charged the next time its worker breaks down that way.
    fn rerun_suspect(&mut self, from: u64, to: u64, what: Suspect) {
        match self.held.part(from, to) {
            Some(chunk) => self.again.push(Chunk {
                suspect: Some(what),
                ..chunk
            }),
            None => self.rerun(from, to),
        }
    }

    /// Fails item `index` with `failure`.
    fn charge(&mut self, index: u64, failure: Failure) {
        self.failed.push(Reply::Failed {
            first: index,
            count: 1,
            failure,
        });
    }

    /// Charges item `index`, the only one the worker may have been running
    /// when it broke down between items, unless the worker had replied
    /// before: then an item it ran and replied to may have broken it (a
    /// task that closed the worker's link, say, and returned). Such an item
    /// runs again, alone, and is charged if that happens to it again.
    fn blame(&mut self, index: u64, failure: Failure) {
        match !self.replied || self.held.chunk.suspect == Some(Suspect::Item) {
            true => self.charge(index, failure),
            false => self.rerun_suspect(index, index + 1, Suspect::Item),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::board::Posted;
    use crate::protocol::batch::BatchWriter;

    /// A chunk of call 1 holding items `first..first + count`, none replied.
    fn held(first: u64, count: u32, suspect: Option<Suspect>) -> Held {
        let (call, _replies, _waker) = Call::new(1, None, Vec::new());
        let mut frame = Vec::new();
        frame::begin(&mut frame, &ToWorker::Chunk { call: 1, first });
        let mut lengths = BatchWriter::new();
        for index in 0..count {
            frame.push(index as u8);
            lengths.push(1);
        }
        lengths.finish(&mut frame);
        frame::finish(&mut frame).unwrap();
        let chunk = Chunk {
            call: 1,
            first,
            count,
            frame: Arc::new(frame),
            suspect,
        };
        Held {
            call,
            chunk,
            done: 0,
        }
    }

    /// A worker killed after it lived on without its link, while it ran
    /// item `running` of call 1.
    fn lingered(running: u64) -> Ending {
        let item = Item {
            call: 1,
            index: running,
            started: 0,
        };
        let posted = Posted {
            doing: Doing::Running(item),
            last: Some(item),
            torn: false,
        };
        Ending {
            lingered: true,
            ..Ending::new(Death::Signal(9), posted)
        }
    }

    /// Items `first..first + count`, as (first, count).
    type Span = (u64, u32);

    /// A chunk to run again, as (first, count, suspect).
    type Rerun = (u64, u32, Option<Suspect>);

    /// What `after_end` decides: the failed items, as (first, count), each
    /// failure checked by `expected`; and the chunks to run again, as
    /// (first, count, suspect).
    fn decide(
        held: &Held,
        ending: Ending,
        replied: bool,
        expected: fn(&Failure) -> bool,
    ) -> (Vec<Span>, Vec<Rerun>) {
        let mut again = Vec::new();
        let failed = held.after_end(&ending, Cause::Died(ending.death), replied, &mut again);
        let failed = failed
            .iter()
            .map(|reply| match reply {
                Reply::Failed {
                    first,
                    count,
                    failure,
                } if expected(failure) => (*first, *count),
                other => panic!("not the failure expected: {other:?}"),
            })
            .collect();
        let again = again
            .iter()
            .map(|chunk| (chunk.first, chunk.count, chunk.suspect))
            .collect();
        (failed, again)
    }

    /// The failure of an item whose worker's link closed.
    fn link_closed(failure: &Failure) -> bool {
        matches!(failure, Failure::Codec(reason) if reason.contains("link to the pool closed"))
    }

    #[test]
    fn a_worker_that_lingered_charges_no_item_of_several() {
        let (failed, again) = decide(&held(10, 3, None), lingered(12), false, link_closed);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(again, [(10, 1, None), (11, 1, None), (12, 1, None)]);
        // The items after the last it started did not do it.
        let (failed, again) = decide(&held(10, 5, None), lingered(11), false, link_closed);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(again, [(10, 1, None), (11, 1, None), (12, 3, None)]);
    }

    #[test]
    fn a_worker_that_lingered_setting_up_fails_its_chunk_once() {
        let setting_up = Ending {
            lingered: true,
            ..Ending::new(
                Death::Signal(9),
                Posted {
                    doing: Doing::SettingUp {
                        call: 1,
                        started: 0,
                    },
                    last: None,
                    torn: false,
                },
            )
        };
        let (failed, again) = decide(&held(0, 40, None), setting_up, false, link_closed);
        assert_eq!((failed, again), (vec![(0, 40)], vec![]));
        // A worker that had replied before: an item of an earlier chunk may
        // have closed the link. The chunk runs once more, then fails.
        let (failed, again) = decide(&held(0, 40, None), setting_up, true, link_closed);
        assert_eq!(
            (failed, again),
            (vec![], vec![(0, 40, Some(Suspect::SetUp))])
        );
        let (failed, again) = decide(
            &held(0, 40, Some(Suspect::SetUp)),
            setting_up,
            true,
            link_closed,
        );
        assert_eq!((failed, again), (vec![(0, 40)], vec![]));
        // Suspected of its set-up, it is not suspected of its items: one that
        // was running when the link closed runs again, alone, uncharged.
        let (failed, again) = decide(
            &held(0, 40, Some(Suspect::SetUp)),
            lingered(0),
            true,
            link_closed,
        );
        assert_eq!(
            (failed, again),
            (vec![], vec![(0, 1, Some(Suspect::Item)), (1, 39, None)])
        );
    }

    #[test]
    fn an_item_alone_on_a_worker_that_lingered_is_charged_if_it_ran_first() {
        let (failed, again) = decide(&held(7, 1, None), lingered(7), false, link_closed);
        assert_eq!((failed, again), (vec![(7, 1)], vec![]));
    }

    #[test]
    fn an_item_alone_after_others_runs_once_more_then_is_charged() {
        let (failed, again) = decide(&held(7, 1, None), lingered(7), true, link_closed);
        assert_eq!((failed, again), (vec![], vec![(7, 1, Some(Suspect::Item))]));
        let (failed, again) = decide(
            &held(7, 1, Some(Suspect::Item)),
            lingered(7),
            true,
            link_closed,
        );
        assert_eq!((failed, again), (vec![(7, 1)], vec![]));
    }

    #[test]
    fn a_death_between_items_after_others_runs_the_last_again_first() {
        let item = Item {
            call: 1,
            index: 4,
            started: 0,
        };
        let ending = Ending::new(
            Death::Exit(2),
            Posted {
                doing: Doing::Idle,
                last: Some(item),
                torn: false,
            },
        );
        let exited = |failure: &Failure| matches!(failure, Failure::Died(Death::Exit(2)));
        let (failed, again) = decide(&held(4, 3, None), ending, true, exited);
        assert_eq!(
            (failed, again),
            (vec![], vec![(4, 1, Some(Suspect::Item)), (5, 2, None)])
        );
        // A worker that had replied to nothing ran item 4 first: it is charged.
        let (failed, again) = decide(&held(4, 3, None), ending, false, exited);
        assert_eq!((failed, again), (vec![(4, 1)], vec![(5, 2, None)]));
    }
}
