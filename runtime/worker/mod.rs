//! What a worker does with the frames it is sent: build a call's closure, run
//! chunks of items, reply. Worker processes and threads run [`run`]; the
//! serial backend feeds a [`Session`] in the caller's own thread.

mod chunk;
mod pacer;

use std::io::{self, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::platform;
use crate::platform::bell::Ringer;
use crate::platform::board::{Board, Doing, INITIALIZER};
use crate::platform::identity::Identity;
use crate::platform::link::{self, WorkerEnds};
use crate::platform::ring::{Ring, Waited};
use crate::protocol::batch::{Batch, BatchWriter};
use crate::protocol::entry;
use crate::protocol::frame::{self, FrameError, ReplyFrame};
use crate::protocol::job::{Job, Progress};
use crate::protocol::message::{decode_outcome, Failure, FromWorker, Outcome, Refusal, ToWorker};
use crate::unwind;
use crate::worker::chunk::ChunkRun;
use crate::worker::pacer::Pacer;

/// Where a [`Session`] sends its reply frames.
pub(crate) type Send<'a> = dyn FnMut(&[u8]) -> io::Result<()> + 'a;

/// A worker's state between frames.
pub(crate) struct Session {
    /// Why every chunk must be refused: the initializer failed.
    broken_init: Option<Refusal>,
    current: Option<Current>,
    output: ReplyFrame,
    /// When to send the results a chunk has so far; `None`: at its end only.
    pacer: Option<Pacer>,
}

/// The closure of the call the worker is running, or why it could not be built.
struct Current {
    call: u64,
    timed: bool,
    job: Result<Job, Refusal>,
}

/// What a worker process runs, found by the fork server before `main`.
// linkme places the entry in a link section of its own, which the
// `unsafe_code` lint counts; linkme checks its type.
#[allow(unsafe_code)]
#[linkme::distributed_slice(platform::WORKER_BODY)]
static WORKER_BODY: platform::WorkerBody = run;

/// How long a worker with nothing to do spins before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

/// How often a worker that sleeps, waiting for the pool, looks whether the
/// pool is still there (a pool that ends tells it at once; one that cannot,
/// because its worker's ring was full, is found gone this way).
const LOOK_FOR_POOL: Duration = Duration::from_secs(1);

/// Serves the pool until it ends the link; returns the exit code.
pub(crate) fn run(ends: &mut WorkerEnds, board: &Board) -> i32 {
    let WorkerEnds {
        socket,
        socket_identity,
        down,
        up,
        bell,
    } = ends;
    let socket: &UnixStream = socket;
    let socket_identity = *socket_identity;
    let mut replies = Replies {
        up,
        socket,
        socket_identity,
        bell,
        board,
    };
    let mut send = |reply: &[u8]| replies.send(reply);
    let mut reader = BufReader::with_capacity(64 * 1024, socket);
    let mut bulk = Vec::new();
    let mut session = Session::new(true);
    loop {
        if !down.has_message() {
            let deadline = Instant::now() + LOOK_FOR_POOL;
            if down.wait_readable(SPIN, Some(deadline)) == Waited::TimedOut
                && link::pool_gone(socket, socket_identity)
            {
                return 0;
            }
            continue;
        }
        // Frames are read in place: the pool is trusted not to write a
        // message it has committed.
        let handled = match down.read() {
            // The next frame comes through the socket.
            Ok(Some(message)) if message.is_empty() => {
                drop(message);
                // Never from a file a task put in the socket's place.
                if !socket_identity.is(socket.as_fd()) {
                    return 2;
                }
                match frame::read_blocking(&mut reader, &mut bulk) {
                    Ok(true) => session.handle(&bulk, board, &mut send),
                    // The pool has ended the link.
                    Ok(false) => return 0,
                    Err(_) => return 2,
                }
            }
            Ok(Some(message)) => session.handle(&message, board, &mut send),
            Ok(None) => continue,
            Err(_) => return 2,
        };
        if handled.is_err() {
            return 2;
        }
    }
}

/// Where a worker's replies go: its ring to the pool, or the socket for a
/// reply too large for the ring; then the bell, if the dispatcher sleeps.
struct Replies<'a> {
    up: &'a mut Ring,
    socket: &'a UnixStream,
    socket_identity: Identity,
    bell: &'a Ringer,
    board: &'a Board,
}

impl Replies<'_> {
    /// Sends a frame (length prefix and body).
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let body = frame.get(4..).unwrap_or_default();
        if !body.is_empty() && body.len() <= self.up.max_message() {
            self.put(body)?;
        } else {
            // The empty message first: the pool reads the socket when it
            // finds it.
            self.put(&[])?;
            // Never into a file a task put in the socket's place.
            if !self.socket_identity.is(self.socket.as_fd()) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let mut socket = self.socket;
            socket.write_all(frame)?;
        }
        if self.board.dispatcher_sleeps() {
            self.bell.ring();
        }
        Ok(())
    }

    /// Writes one message to the ring, waiting while it is full.
    fn put(&mut self, message: &[u8]) -> io::Result<()> {
        loop {
            if self.up.try_write(message).map_err(io::Error::other)? {
                return Ok(());
            }
            // The pool empties the ring as it reads; it reads when it wakes.
            if self.board.dispatcher_sleeps() {
                self.bell.ring();
            }
            let deadline = Instant::now() + LOOK_FOR_POOL;
            if self.up.wait_writable(message.len(), SPIN, Some(deadline)) == Waited::TimedOut
                && link::pool_gone(self.socket, self.socket_identity)
            {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
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
            output: ReplyFrame::new(),
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
            ToWorker::Call {
                call,
                entry,
                timeout,
            } => {
                // Drop the previous closure before building the next one.
                drop(self.current.take());
                let timed = timeout.is_some();
                board.post(Doing::SettingUp {
                    call,
                    started: if timed { platform::monotonic_ns() } else { 0 },
                });
                let job = build(entry, tail);
                if let Ok(job) = &job {
                    platform::set_task(job.name());
                }
                board.post(Doing::Idle);
                self.current = Some(Current { call, timed, job });
                Ok(())
            }
            ToWorker::Chunk { call, first } => {
                // Bytes that are not a batch are a broken channel: the
                // worker stops, and the pool runs the chunk again elsewhere
                // from its own copy.
                let items = Batch::parse(tail).map_err(FrameError::Batch)?;
                let count = items.count();
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
                            items,
                            timed,
                        };
                        chunk.run(job, &mut self.output, self.pacer.as_mut(), board, send)
                    }
                    Err(refusal) => refuse(call, first, count, Failure::Refused(refusal), send),
                }
            }
        }
    }
}

/// Sends a failure of `count` items from `first`.
fn refuse(
    call: u64,
    first: u64,
    count: u32,
    failure: Failure,
    send: &mut Send<'_>,
) -> Result<(), FrameError> {
    let mut reply = Vec::new();
    let header = FromWorker::Failed {
        call,
        first,
        count,
        failure,
    };
    frame::begin(&mut reply, &header);
    frame::finish(&mut reply)?;
    send(&reply)?;
    Ok(())
}

fn build(entry: entry::Entry<'_>, setup: &[u8]) -> Result<Job, Refusal> {
    let (start, name) = entry::resolve(entry).map_err(Refusal::Unrunnable)?;
    match unwind::catch(|| start(setup)) {
        Ok(Ok(job)) => Ok(match name {
            Some(name) => job.named(name),
            None => job,
        }),
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
            Refusal::Unrunnable(reason) | Refusal::Initializer(reason) => reason,
        })
    })?;
    // One item whose argument tuple, `()`, takes no bytes.
    let mut items = Vec::new();
    let mut writer = BatchWriter::new();
    writer.push(0);
    writer.finish(&mut items);
    let items = Batch::parse(&items).expect("a batch of one empty value");
    let mut out = ReplyFrame::new();
    let mut progress = Unwatched;
    if let Err(report) =
        unwind::catch(|| job.run_items(&mut items.iter(), 0, 1, &mut out, &mut progress))
    {
        return Err(Refusal::Initializer(format!("it panicked at {report}")));
    }
    match decode_outcome::<()>(out.outcomes()) {
        Ok(Outcome::Done(())) => Ok(()),
        Ok(Outcome::Panicked { report, .. }) => {
            Err(Refusal::Initializer(format!("it panicked at {report}")))
        }
        Ok(Outcome::Unencodable(reason) | Outcome::Undecodable(reason)) => {
            Err(Refusal::Initializer(reason))
        }
        Err(e) => Err(Refusal::Initializer(e.to_string())),
    }
}

/// The progress of a run that nobody follows: the initializer's.
struct Unwatched;

impl Progress for Unwatched {
    fn started(&mut self, _: u32, _: usize) {}

    fn decoded(&mut self) {}

    fn finished(&mut self, _: u32) -> bool {
        false
    }
}

#[cfg(test)]
// The `#[remote]` factory below registers itself in a link section, which
// the `unsafe_code` lint counts in forkmap's own crate.
#[allow(unsafe_code)]
mod tests {
    //! What a worker does with frames that do not check out: each becomes a
    //! failure or an outcome naming what was wrong, never a panic.

    use std::time::Duration;

    use super::*;
    use crate::protocol::codec;
    use crate::protocol::entry::Entry;
    use crate::protocol::task::Task;

    // Only its registration is used: the tests send frames that name it.
    #[crate::remote(crate = crate)]
    #[allow(dead_code)]
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

    fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode(value, &mut out).unwrap();
        out
    }

    fn frame(header: &ToWorker<'_>, tail: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        frame::begin(&mut buf, header);
        buf.extend_from_slice(tail);
        frame::finish(&mut buf).unwrap();
        buf.split_off(4)
    }

    /// A batch of the values, each already encoded.
    fn batch(values: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lengths = BatchWriter::new();
        for value in values {
            out.extend_from_slice(value);
            lengths.push(value.len());
        }
        lengths.finish(&mut out);
        out
    }

    /// Hands the session one frame; returns its replies, header and tail.
    fn handle(session: &mut Session, body: &[u8]) -> Vec<(FromWorker, Vec<u8>)> {
        let board = Board::default();
        let mut replies = Vec::new();
        session
            .handle(body, &board, &mut |reply: &[u8]| {
                let (header, tail) = frame::split::<FromWorker>(&reply[4..]).unwrap();
                replies.push((header, tail.to_vec()));
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
                timeout: None,
            },
            setup,
        );
        assert!(handle(session, &call).is_empty());
    }

    /// Sends one chunk of call 1 and returns the worker's one reply.
    fn run(session: &mut Session, items: &[Vec<u8>]) -> (FromWorker, Vec<u8>) {
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &batch(items));
        let mut replies = handle(session, &chunk);
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.pop().unwrap()
    }

    fn refusal(reply: (FromWorker, Vec<u8>)) -> String {
        match reply.0 {
            FromWorker::Failed {
                failure: Failure::Refused(Refusal::Unrunnable(reason)),
                ..
            } => reason,
            other => panic!("expected an Unrunnable refusal, got {other:?}"),
        }
    }

    /// The outcomes of a `Done` reply of `u64` results.
    fn outcomes(reply: (FromWorker, Vec<u8>)) -> Vec<Outcome<u64>> {
        assert!(matches!(reply.0, FromWorker::Done { .. }), "{:?}", reply.0);
        Batch::parse(&reply.1)
            .unwrap()
            .iter()
            .map(|bytes| decode_outcome::<u64>(bytes).unwrap())
            .collect()
    }

    #[test]
    fn a_factory_runs_from_its_name_and_arguments() {
        let mut session = Session::new(false);
        set_up(&mut session, Entry::Named(adder_key()), &encoded(&(5u64,)));
        let reply = run(&mut session, &[encoded(&(10u64,)), encoded(&(20u64,))]);
        let values: Vec<u64> = outcomes(reply)
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Done(value) => value,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, [15, 25]);
    }

    #[test]
    fn an_unknown_name_is_refused_with_that_name() {
        let mut session = Session::new(false);
        set_up(&mut session, Entry::Named("no::such::factory"), &[]);
        let reason = refusal(run(&mut session, &[Vec::new()]));
        assert!(reason.contains("`no::such::factory`"), "{reason}");
    }

    #[test]
    fn arguments_that_do_not_decode_are_refused_naming_the_factory() {
        let mut session = Session::new(false);
        // A u64 is a varint: 0xff bytes with no end never decode.
        set_up(&mut session, Entry::Named(adder_key()), &[0xff; 3]);
        let reason = refusal(run(&mut session, &[Vec::new()]));
        assert!(reason.contains("forkmap::worker::tests::adder"), "{reason}");
        assert!(reason.contains("do not decode"), "{reason}");
    }

    #[test]
    fn an_item_that_does_not_decode_fails_alone() {
        let mut session = Session::new(false);
        set_up(&mut session, Entry::Named(adder_key()), &encoded(&(5u64,)));
        let mut longer = encoded(&(1u64,));
        longer.push(0);
        let items = [encoded(&(1u64,)), vec![0xff; 3], longer, encoded(&(2u64,))];
        let outcomes = outcomes(run(&mut session, &items));
        assert!(matches!(outcomes[0], Outcome::Done(6)), "{outcomes:?}");
        assert!(
            matches!(&outcomes[1], Outcome::Undecodable(reason) if reason.contains("varint")),
            "{outcomes:?}"
        );
        assert!(
            matches!(&outcomes[2], Outcome::Undecodable(reason) if reason.contains("left unread")),
            "{outcomes:?}"
        );
        assert!(matches!(outcomes[3], Outcome::Done(7)), "{outcomes:?}");
    }

    #[test]
    fn a_chunk_of_a_call_never_set_up_is_refused() {
        let mut session = Session::new(false);
        let reason = refusal(run(&mut session, &[Vec::new()]));
        assert!(reason.contains("not sent this call's function"), "{reason}");
    }

    #[test]
    fn a_chunk_whose_items_are_not_a_batch_stops_the_worker() {
        let mut session = Session::new(false);
        set_up(&mut session, Entry::Named(adder_key()), &encoded(&(5u64,)));
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &[1, 2]);
        let board = Board::default();
        let handled = session.handle(&chunk, &board, &mut |_: &[u8]| Ok(()));
        assert!(matches!(handled, Err(FrameError::Batch(_))), "{handled:?}");
    }

    fn total(values: Vec<u32>) -> u64 {
        values.iter().map(|&v| u64::from(v)).sum()
    }

    fn nothing() {}

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
        let vec_items: Vec<Vec<u8>> = (0..5u32)
            .map(|i| encoded(&(vec![i; i as usize],)))
            .collect();
        let u64_items: Vec<Vec<u8>> = (0..5u64).map(|i| encoded(&(i,))).collect();
        let valid = [
            frame(
                &ToWorker::Call {
                    call: 1,
                    entry,
                    timeout: None,
                },
                &setup,
            ),
            frame(
                &ToWorker::Call {
                    call: 1,
                    entry: Entry::Named(adder_key()),
                    timeout: Some(Duration::from_secs(1)),
                },
                &encoded(&(5u64,)),
            ),
            frame(&ToWorker::Init { entry: init_entry }, &init_setup),
            frame(&ToWorker::Chunk { call: 1, first: 0 }, &batch(&vec_items)),
            frame(&ToWorker::Chunk { call: 1, first: 40 }, &batch(&u64_items)),
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
        let reason = refusal(run(&mut session, &[Vec::new()]));
        assert!(reason.contains("does not check out"), "{reason}");
        set_up(&mut session, Entry::Code { offset, check }, &setup);
        let reply = run(&mut session, &[encoded(&(vec![1u32, 2, 3],))]);
        assert!(
            matches!(reply.0, FromWorker::Done { count: 1, .. }),
            "{:?}",
            reply.0
        );
    }
}
