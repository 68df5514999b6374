//! Running one chunk in a worker: each item posted on the board before it
//! runs, a panic turned into its item's outcome, results sent as they come.

use crate::error::PanicReport;
use crate::platform;
use crate::platform::board::{Board, Doing, Item};
use crate::protocol::batch::Batch;
use crate::protocol::codec;
use crate::protocol::frame::{FrameError, ReplyFrame};
use crate::protocol::job::{Job, Progress};
use crate::protocol::message::{Failure, Outcome, Refusal};
use crate::unwind;
use crate::worker::pacer::Pacer;
use crate::worker::{refuse, Send};

/// A chunk of items to run.
pub(super) struct ChunkRun<'a> {
    pub(super) call: u64,
    pub(super) first: u64,
    pub(super) items: Batch<'a>,
    /// Its call has a timeout: post each item's start time.
    pub(super) timed: bool,
}

impl ChunkRun<'_> {
    /// Runs every item, posting each on the board before its arguments
    /// decode, and sends the outcomes: at the end, and before when the
    /// pacer says so. The board shows the worker idle whenever it sends.
    ///
    /// One panic guard covers a run of items: a panic while an item's
    /// arguments decode, while it runs, or while its result encodes becomes
    /// that item's outcome, and the items after it run on.
    pub(super) fn run(
        &self,
        job: &mut Job,
        output: &mut ReplyFrame,
        mut pacer: Option<&mut Pacer>,
        board: &Board,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        output.reset();
        if let Some(pacer) = pacer.as_deref_mut() {
            pacer.restart();
        }
        let count = self.items.count();
        if board.asked_to_stop(self.call) {
            return refuse(self.call, self.first, count, Failure::Cancelled, send);
        }
        let mut items = self.items.iter();
        // The next item to run, and the first not yet sent.
        let (mut next, mut sent) = (0u32, 0u32);
        while next < count {
            let mut track = Track {
                chunk: self,
                board,
                pacer: pacer.as_deref_mut(),
                count,
                running: None,
                cancelled: false,
            };
            let ran = unwind::catch(|| job.run_items(&mut items, next, count, output, &mut track));
            let (running, cancelled) = (track.running, track.cancelled);
            board.post(Doing::Idle);
            match (ran, running) {
                (Ok(stopped), _) => {
                    next = stopped;
                    self.send(output, sent, next, send)?;
                    sent = next;
                    if cancelled && next < count {
                        let first = self.first + u64::from(next);
                        return refuse(self.call, first, count - next, Failure::Cancelled, send);
                    }
                }
                (Err(report), Some(running)) => {
                    let buf = output.rewrite_outcome(running.mark);
                    let outcome = Outcome::<()>::Panicked {
                        report,
                        decoding: running.decoding,
                    };
                    codec::encode(&outcome, buf).expect("a panic outcome always encodes");
                    output.end_outcome(running.mark);
                    next = running.n + 1;
                }
                // Only an item can panic: this is not reached.
                (Err(report), None) => return self.refuse_rest(sent, output, report, send),
            }
        }
        self.send(output, sent, next, send)
    }

    /// Sends the outcomes of items `from..to` (of this chunk) and starts a
    /// new reply.
    fn send(
        &self,
        output: &mut ReplyFrame,
        from: u32,
        to: u32,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        if from == to {
            return Ok(());
        }
        let first = self.first + u64::from(from);
        match output.seal(self.call, first) {
            Ok(reply) => send(reply)?,
            Err(e) => {
                let failure = Failure::Codec(format!("the results do not fit in a frame: {e}"));
                refuse(self.call, first, to - from, failure, send)?;
            }
        }
        output.reset();
        Ok(())
    }

    /// Fails every item from `from` on, after a panic no item was charged
    /// with.
    fn refuse_rest(
        &self,
        from: u32,
        output: &mut ReplyFrame,
        report: PanicReport,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        output.reset();
        let first = self.first + u64::from(from);
        let reason = format!("the worker panicked between items at {report}");
        let failure = Failure::Refused(Refusal::Unrunnable(reason));
        refuse(self.call, first, self.items.count() - from, failure, send)
    }
}

/// The item a worker runs now: its number in the chunk, where its outcome
/// starts in the reply, and whether its arguments are still decoding.
#[derive(Debug, Clone, Copy)]
struct Running {
    n: u32,
    mark: usize,
    decoding: bool,
}

/// Follows a chunk's items for [`Job::run_items`]: posts each on the board,
/// and asks the pacer when to stop and send.
struct Track<'a, 'c> {
    chunk: &'a ChunkRun<'c>,
    board: &'a Board,
    pacer: Option<&'a mut Pacer>,
    count: u32,
    /// The item started and not finished, if any.
    running: Option<Running>,
    /// The call was cancelled: stop after the item that ran.
    cancelled: bool,
}

impl Progress for Track<'_, '_> {
    fn started(&mut self, n: u32, mark: usize) {
        let chunk = self.chunk;
        self.board.post(Doing::Running(Item {
            call: chunk.call,
            index: chunk.first + u64::from(n),
            started: if chunk.timed {
                platform::monotonic_ns()
            } else {
                0
            },
        }));
        self.running = Some(Running {
            n,
            mark,
            decoding: true,
        });
    }

    fn decoded(&mut self) {
        if let Some(running) = &mut self.running {
            running.decoding = false;
        }
    }

    fn finished(&mut self, n: u32) -> bool {
        self.running = None;
        if n + 1 == self.count {
            return false;
        }
        self.cancelled = self.board.asked_to_stop(self.chunk.call);
        self.cancelled || self.pacer.as_mut().is_some_and(|pacer| pacer.due())
    }
}
