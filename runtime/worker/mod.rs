//! What a worker does with the frames it is sent: build a call's closure, run
//! chunks of items, reply. Worker processes and threads run [`run`]; a
//! serial pool feeds a [`Session`] in the caller's own thread.

use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::platform;
use crate::platform::board::{Board, Doing, Item, INITIALIZER};
use crate::protocol::entry;
use crate::protocol::frame::{self, DoneFrame, FrameError, FromWorker, Refusal, ToWorker};
use crate::protocol::job::{Job, Outcome, Progress};
use crate::unwind;

/// Where a [`Session`] sends its reply frames.
pub(crate) type Send<'a> = dyn FnMut(&[u8]) -> io::Result<()> + 'a;

/// A worker's state between frames.
pub(crate) struct Session {
    /// Why every chunk must be refused: the initializer failed.
    broken_init: Option<Refusal>,
    current: Option<Current>,
    output: DoneFrame,
    /// When to send the results a chunk has so far; `None`: at its end only.
    pacer: Option<Pacer>,
}

/// The closure of the call the worker is running, or why it could not be built.
struct Current {
    call: u64,
    timed: bool,
    job: Result<Box<dyn Job>, Refusal>,
}

/// Serves the parent until it closes the channel; returns the exit code.
pub(crate) fn run(channel: &UnixStream, board: &Board) -> i32 {
    let mut reader = BufReader::with_capacity(64 * 1024, channel);
    let mut writer = channel;
    let mut session = Session::new(true);
    let mut input = Vec::new();
    let mut send = |reply: &[u8]| writer.write_all(reply);
    loop {
        match frame::read_blocking(&mut reader, &mut input) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(_) => return 2,
        }
        if session.handle(&input, board, &mut send).is_err() {
            return 2;
        }
    }
}

impl Session {
    /// A server that sends the results of a long chunk as they come when
    /// `paced`, and one reply per chunk otherwise.
    pub(crate) fn new(paced: bool) -> Self {
        Session {
            broken_init: None,
            current: None,
            output: DoneFrame::new(),
            pacer: paced.then(Pacer::new),
        }
    }

    /// Handles one frame body, sending any replies through `send`.
    pub(crate) fn handle(
        &mut self,
        body: &[u8],
        board: &Board,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        let (header, tail) = frame::split::<ToWorker<'_>>(body)?;
        match header {
            ToWorker::Init { entry } => {
                board.post(Doing::SettingUp {
                    call: INITIALIZER,
                    started: 0,
                });
                self.broken_init = initialize(entry, tail).err();
                board.post(Doing::Idle);
                Ok(())
            }
            ToWorker::Call { call, entry, timed } => {
                // Drop the previous closure before building the next one.
                drop(self.current.take());
                board.post(Doing::SettingUp {
                    call,
                    started: if timed { platform::monotonic_ns() } else { 0 },
                });
                let job = build(entry, tail);
                board.post(Doing::Idle);
                self.current = Some(Current { call, timed, job });
                Ok(())
            }
            ToWorker::Chunk { call, first } => {
                let Some((items, count)) = tail.split_last_chunk::<4>() else {
                    let reason = Refusal::Unrunnable("a chunk came without its item count".into());
                    return refuse(call, first, 0, reason, send);
                };
                let count = u32::from_le_bytes(*count);
                let current = match (&self.broken_init, &mut self.current) {
                    (Some(refusal), _) => Err(refusal.clone()),
                    (None, Some(current)) if current.call == call => match &mut current.job {
                        Ok(job) => Ok((job, current.timed)),
                        Err(refusal) => Err(refusal.clone()),
                    },
                    (None, _) => Err(Refusal::Unrunnable(
                        "the worker was not sent this call's function".into(),
                    )),
                };
                match current {
                    Ok((job, timed)) => {
                        let chunk = ChunkRun {
                            call,
                            first,
                            count,
                            items,
                            timed,
                        };
                        chunk.run(
                            &mut **job,
                            &mut self.output,
                            self.pacer.as_mut(),
                            board,
                            send,
                        )
                    }
                    Err(refusal) => refuse(call, first, count, refusal, send),
                }
            }
        }
    }
}

/// A chunk of items to run.
struct ChunkRun<'a> {
    call: u64,
    first: u64,
    count: u32,
    items: &'a [u8],
    timed: bool,
}

impl ChunkRun<'_> {
    /// Runs every item, posting each on the board before it runs, and sends
    /// the outcomes: at the end, and before when the pacer says so. The
    /// board shows the worker idle whenever it sends.
    ///
    /// One panic guard covers a run of items: a panic while an item runs or
    /// while its result encodes becomes that item's outcome, and the items
    /// after it run on; a panic while an item's arguments decode leaves the
    /// rest of the chunk unreadable, so that item and the rest are refused.
    fn run(
        &self,
        job: &mut dyn Job,
        output: &mut DoneFrame,
        mut pacer: Option<&mut Pacer>,
        board: &Board,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        output.reset();
        if let Some(pacer) = pacer.as_deref_mut() {
            pacer.restart();
        }
        // The next item to run and where its arguments start; how many of
        // the items have been sent.
        let (mut next, mut at, mut sent) = (0u32, 0usize, 0u32);
        while next < self.count {
            let mut track = Track {
                chunk: self,
                board,
                pacer: pacer.as_deref_mut(),
                running: None,
                done: (next, at),
            };
            let tail = output.tail();
            let ran =
                unwind::catch(|| job.run_items(self.items, next, at, self.count, tail, &mut track));
            let (running, done) = (track.running, track.done);
            board.post(Doing::Idle);
            match ran {
                Ok(Ok((stopped, upto))) => {
                    (next, at) = (stopped, upto);
                    self.send(output, sent, next, at, send)?;
                    sent = next;
                }
                Ok(Err(undecodable)) => {
                    self.send(output, sent, undecodable.n, undecodable.at, send)?;
                    let first = self.first + u64::from(undecodable.n);
                    let rest = self.count - undecodable.n;
                    let reason = Refusal::Undecodable(undecodable.reason);
                    return refuse(self.call, first, rest, reason, send);
                }
                Err(report) => match running {
                    // It panicked while it ran, or while its result encoded.
                    Some(Running { n, end, mark }) => {
                        let tail = output.tail();
                        tail.truncate(mark);
                        frame::encode_into(&Outcome::<()>::Panicked(report), tail)
                            .expect("a panic report always encodes");
                        (next, at) = (n + 1, end);
                    }
                    // It panicked while the arguments of the item after the
                    // last one done decoded.
                    None => {
                        let (n, upto) = done;
                        self.send(output, sent, n, upto, send)?;
                        let first = self.first + u64::from(n);
                        let reason = Refusal::Undecodable(format!(
                            "decoding the item's arguments panicked at {report}"
                        ));
                        return refuse(self.call, first, self.count - n, reason, send);
                    }
                },
            }
        }
        self.send(output, sent, next, at, send)
    }

    /// Sends the outcomes of items `from..to` (of this chunk), whose
    /// arguments end at `upto`, and starts a new reply.
    fn send(
        &self,
        output: &mut DoneFrame,
        from: u32,
        to: u32,
        upto: usize,
        send: &mut Send<'_>,
    ) -> Result<(), FrameError> {
        if from == to {
            return Ok(());
        }
        let first = self.first + u64::from(from);
        match output.seal_done(self.call, first, to - from, upto as u32) {
            Ok(reply) => send(reply)?,
            Err(e) => {
                let reason = format!("the results do not fit in a frame: {e}");
                refuse(
                    self.call,
                    first,
                    to - from,
                    Refusal::Unrunnable(reason),
                    send,
                )?;
            }
        }
        output.reset();
        Ok(())
    }
}

/// The item a worker runs now: its number in the chunk, where its
/// arguments end, and where its outcome starts in the output.
#[derive(Debug, Clone, Copy)]
struct Running {
    n: u32,
    end: usize,
    mark: usize,
}

/// Follows a chunk's items for [`Job::run_items`]: posts each on the board,
/// and asks the pacer when to stop and send.
struct Track<'a, 'c> {
    chunk: &'a ChunkRun<'c>,
    board: &'a Board,
    pacer: Option<&'a mut Pacer>,
    /// The item started and not finished, if any.
    running: Option<Running>,
    /// The next item after the last one finished, and where it starts.
    done: (u32, usize),
}

impl Progress for Track<'_, '_> {
    fn started(&mut self, n: u32, start: usize, end: usize, mark: usize) {
        let chunk = self.chunk;
        self.board.post(Doing::Running(Item {
            call: chunk.call,
            index: chunk.first + u64::from(n),
            start: start as u64,
            end: end as u64,
            started: if chunk.timed {
                platform::monotonic_ns()
            } else {
                0
            },
        }));
        self.running = Some(Running { n, end, mark });
    }

    fn finished(&mut self, n: u32) -> bool {
        if let Some(running) = self.running.take() {
            self.done = (n + 1, running.end);
        }
        n + 1 < self.chunk.count && self.pacer.as_mut().is_some_and(|pacer| pacer.due())
    }
}

/// Sends a refusal of `count` items from `first`.
fn refuse(
    call: u64,
    first: u64,
    count: u32,
    reason: Refusal,
    send: &mut Send<'_>,
) -> Result<(), FrameError> {
    let mut reply = Vec::new();
    let header = FromWorker::Refused {
        call,
        first,
        count,
        reason,
    };
    frame::begin(&mut reply, &header);
    frame::finish(&mut reply)?;
    send(&reply)?;
    Ok(())
}

/// How long a worker keeps results of a chunk before sending them, looked at
/// after items: a slow item's result goes out as soon as it is done, not at
/// its chunk's end, and quick items' results go out every few milliseconds.
/// (A quick item's result still waits for a slow item right after it.)
const SEND_AFTER: Duration = Duration::from_millis(2);

/// Says when [`SEND_AFTER`] has passed, looking at the clock only every so
/// many items, a number it adapts so that tiny items pay almost nothing.
struct Pacer {
    /// Items between two looks at the clock, and until the next one.
    every: u32,
    left: u32,
    looked: Instant,
    sent: Instant,
}

impl Pacer {
    fn new() -> Self {
        let now = Instant::now();
        Pacer {
            every: 1,
            left: 1,
            looked: now,
            sent: now,
        }
    }

    /// Starts a chunk afresh: look at the clock after its first item, and
    /// count from now, so that what earlier chunks taught of item speed does
    /// not hold back the first results of this one.
    fn restart(&mut self) {
        *self = Pacer::new();
    }

    /// Called after each item: true when the results so far should go.
    fn due(&mut self) -> bool {
        self.left -= 1;
        if self.left > 0 {
            return false;
        }
        let now = Instant::now();
        let between = now - self.looked;
        self.looked = now;
        if between < SEND_AFTER / 32 {
            self.every = (self.every * 2).min(1 << 16);
        } else if between > SEND_AFTER / 2 {
            self.every = (self.every / 2).max(1);
        }
        self.left = self.every;
        if now - self.sent >= SEND_AFTER {
            self.sent = now;
            true
        } else {
            false
        }
    }
}

fn build(entry: entry::Entry<'_>, setup: &[u8]) -> Result<Box<dyn Job>, Refusal> {
    let start = entry::resolve(entry).map_err(Refusal::Unrunnable)?;
    match unwind::catch(|| start(setup)) {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(reason)) => Err(Refusal::Unrunnable(match entry {
            entry::Entry::Named(name) => format!("`{name}`: {reason}"),
            entry::Entry::Code { .. } => reason,
        })),
        Err(report) => Err(Refusal::FactoryPanicked(report)),
    }
}

/// Builds the initializer and runs it once, with no arguments.
fn initialize(entry: entry::Entry<'_>, setup: &[u8]) -> Result<(), Refusal> {
    let mut job = build(entry, setup).map_err(|refusal| {
        Refusal::Initializer(match refusal {
            Refusal::FactoryPanicked(report) => format!("its factory panicked at {report}"),
            Refusal::Unrunnable(reason)
            | Refusal::Initializer(reason)
            | Refusal::Undecodable(reason) => reason,
        })
    })?;
    let mut out = Vec::new();
    let mut progress = Unwatched;
    match unwind::catch(|| job.run_items(&[], 0, 0, 1, &mut out, &mut progress)) {
        Ok(Ok(_)) => {}
        Ok(Err(undecodable)) => return Err(Refusal::Initializer(undecodable.reason)),
        Err(report) => return Err(Refusal::Initializer(format!("it panicked at {report}"))),
    }
    match postcard::from_bytes::<Outcome<()>>(&out) {
        Ok(Outcome::Done(())) => Ok(()),
        Ok(Outcome::Panicked(report)) => {
            Err(Refusal::Initializer(format!("it panicked at {report}")))
        }
        Ok(Outcome::Unencodable(reason)) => Err(Refusal::Initializer(reason)),
        Err(e) => Err(Refusal::Initializer(e.to_string())),
    }
}

/// The progress of a run that nobody follows: the initializer's.
struct Unwatched;

impl Progress for Unwatched {
    fn started(&mut self, _: u32, _: usize, _: usize, _: usize) {}

    fn finished(&mut self, _: u32) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    //! What a worker does with frames that do not check out: each becomes a
    //! refusal naming what was wrong, never a panic.

    use super::*;
    use crate::protocol::entry::Entry;
    use crate::protocol::task::Task;

    #[crate::remote(crate = crate)]
    fn adder(n: u64) -> impl Fn(u64) -> u64 {
        move |x| x + n
    }

    /// `adder`'s wire key, which also holds its name.
    fn adder_key() -> &'static str {
        crate::protocol::entry::REMOTES
            .iter()
            .find(|remote| remote.name == "forkmap::worker::tests::adder")
            .expect("adder is registered")
            .key
    }

    fn frame(header: &ToWorker<'_>, tail: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        frame::begin(&mut buf, header);
        buf.extend_from_slice(tail);
        frame::finish(&mut buf).unwrap();
        buf.split_off(4)
    }

    /// Hands the session one frame; returns the headers of its replies.
    fn handle(session: &mut Session, body: &[u8]) -> Vec<FromWorker> {
        let board = Board::default();
        let mut replies = Vec::new();
        session
            .handle(body, &board, &mut |reply: &[u8]| {
                replies.push(frame::split::<FromWorker>(&reply[4..]).unwrap().0);
                Ok(())
            })
            .unwrap();
        replies
    }

    fn set_up(session: &mut Session, entry: Entry<'_>, setup: &[u8]) {
        let call = frame(
            &ToWorker::Call {
                call: 1,
                entry,
                timed: false,
            },
            setup,
        );
        assert!(handle(session, &call).is_empty());
    }

    /// Sends one chunk of call 1 and returns the worker's one reply.
    fn run(session: &mut Session, items: &[u8], count: u32) -> FromWorker {
        let mut tail = items.to_vec();
        tail.extend_from_slice(&count.to_le_bytes());
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &tail);
        let mut replies = handle(session, &chunk);
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.pop().unwrap()
    }

    fn refusal(reply: FromWorker) -> String {
        match reply {
            FromWorker::Refused {
                reason: Refusal::Unrunnable(reason) | Refusal::Undecodable(reason),
                ..
            } => reason,
            other => panic!("expected an Unrunnable or Undecodable refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_factory_runs_from_its_name_and_arguments() {
        let mut session = Session::new(false);
        set_up(
            &mut session,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let items = postcard::to_stdvec(&(10u64,)).unwrap();
        assert!(matches!(
            run(&mut session, &items, 1),
            FromWorker::Done {
                call: 1,
                first: 0,
                count: 1,
                ..
            }
        ));
    }

    #[test]
    fn an_unknown_name_is_refused_with_that_name() {
        let mut session = Session::new(false);
        set_up(&mut session, Entry::Named("no::such::factory"), &[]);
        let reason = refusal(run(&mut session, &[], 1));
        assert!(reason.contains("`no::such::factory`"), "{reason}");
    }

    #[test]
    fn arguments_that_do_not_decode_are_refused_naming_the_factory() {
        let mut session = Session::new(false);
        // A u64 in postcard is a varint: 0xff bytes with no end never decode.
        set_up(&mut session, Entry::Named(adder_key()), &[0xff; 3]);
        let reason = refusal(run(&mut session, &[], 1));
        assert!(reason.contains("forkmap::worker::tests::adder"), "{reason}");
        assert!(reason.contains("do not decode"), "{reason}");
    }

    #[test]
    fn items_that_do_not_decode_are_refused() {
        let mut session = Session::new(false);
        set_up(
            &mut session,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let reason = refusal(run(&mut session, &[0xff; 3], 1));
        assert!(reason.contains("does not decode"), "{reason}");
        // The worker stays usable: a good chunk of the same call runs.
        let items = postcard::to_stdvec(&(1u64,)).unwrap();
        assert!(matches!(
            run(&mut session, &items, 1),
            FromWorker::Done { .. }
        ));
    }

    #[test]
    fn a_chunk_of_a_call_never_set_up_is_refused() {
        let mut session = Session::new(false);
        let reason = refusal(run(&mut session, &[], 1));
        assert!(reason.contains("not sent this call's function"), "{reason}");
    }

    #[test]
    fn a_chunk_without_its_count_is_refused() {
        let mut session = Session::new(false);
        set_up(
            &mut session,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &[1, 2]);
        let mut replies = handle(&mut session, &chunk);
        let reason = refusal(replies.pop().unwrap());
        assert!(reason.contains("item count"), "{reason}");
    }

    fn total(values: Vec<u32>) -> u64 {
        values.iter().map(|&v| u64::from(v)).sum()
    }

    fn nothing() {}

    /// A chunk frame of call 1 holding `items`, already encoded.
    fn chunk(first: u64, items: &[u8], count: u32) -> Vec<u8> {
        let mut tail = items.to_vec();
        tail.extend_from_slice(&count.to_le_bytes());
        frame(&ToWorker::Chunk { call: 1, first }, &tail)
    }

    #[test]
    fn random_and_mutated_frames_never_panic_a_worker() {
        use crate::test_rng::Rng;

        let mut setup = Vec::new();
        let entry = Task::<(Vec<u32>,)>::__describe(&total, &mut setup)
            .unwrap()
            .entry;
        let mut init_setup = Vec::new();
        let init_entry = Task::<()>::__describe(&nothing, &mut init_setup)
            .unwrap()
            .entry;
        let mut vec_items = Vec::new();
        for i in 0..5u32 {
            vec_items.extend(postcard::to_stdvec(&(vec![i; i as usize],)).unwrap());
        }
        let mut u64_items = Vec::new();
        for i in 0..5u64 {
            u64_items.extend(postcard::to_stdvec(&(i,)).unwrap());
        }
        let valid = [
            frame(
                &ToWorker::Call {
                    call: 1,
                    entry,
                    timed: false,
                },
                &setup,
            ),
            frame(
                &ToWorker::Call {
                    call: 1,
                    entry: Entry::Named(adder_key()),
                    timed: true,
                },
                &postcard::to_stdvec(&(5u64,)).unwrap(),
            ),
            frame(&ToWorker::Init { entry: init_entry }, &init_setup),
            chunk(0, &vec_items, 5),
            chunk(40, &u64_items, 5),
        ];
        let mut rng = Rng::new(0xf022);
        let mut session = Session::new(true);
        let board = Board::default();
        let mut replies = 0usize;
        let mut sink = |_: &[u8]| {
            replies += 1;
            Ok(())
        };
        // The valid frames work as they are.
        for body in &valid {
            session.handle(body, &board, &mut sink).unwrap();
        }
        for round in 0..500_000 {
            let body = if round % 5 == 0 {
                rng.bytes(64)
            } else {
                let base = &valid[rng.below(valid.len())];
                rng.mutate(base)
            };
            // An error is fine; a panic or an abort fails the test.
            let _ = session.handle(&body, &board, &mut sink);
        }
        assert!(replies > 10_000, "few frames reached a chunk: {replies}");
    }

    #[test]
    fn a_code_entry_whose_check_fails_is_refused() {
        let mut setup = Vec::new();
        let Entry::Code { offset, check } = Task::<(Vec<u32>,)>::__describe(&total, &mut setup)
            .unwrap()
            .entry
        else {
            panic!("a plain function is described by its code");
        };
        let mut session = Session::new(false);
        set_up(
            &mut session,
            Entry::Code {
                offset,
                check: check ^ 1,
            },
            &setup,
        );
        let reason = refusal(run(&mut session, &[], 1));
        assert!(reason.contains("does not check out"), "{reason}");
        set_up(&mut session, Entry::Code { offset, check }, &setup);
        let items = postcard::to_stdvec(&(vec![1u32, 2, 3],)).unwrap();
        assert!(matches!(
            run(&mut session, &items, 1),
            FromWorker::Done { count: 1, .. }
        ));
    }
}
