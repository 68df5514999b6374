//! What a worker does with the frames it is sent: build a call's closure, run
//! chunks of items, reply. Worker processes and threads run [`run`]; a
//! serial pool feeds a [`Server`] in the caller's own thread.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::entry;
use crate::frame::{self, FromWorker, Refusal, ToWorker};
use crate::job::{Job, Outcome};
use crate::unwind;

/// A worker's state between frames.
#[derive(Default)]
pub(crate) struct Server {
    /// Why every chunk must be refused: the initializer failed.
    broken_init: Option<Refusal>,
    current: Option<Current>,
    output: Vec<u8>,
}

/// The closure of the call the worker is running, or why it could not be built.
struct Current {
    call: u64,
    job: Result<Box<dyn Job>, Refusal>,
}

/// Serves the parent until it closes the channel; returns the exit code.
pub(crate) fn run(channel: &UnixStream) -> i32 {
    let mut reader = BufReader::with_capacity(64 * 1024, channel);
    let mut writer = channel;
    let mut server = Server::default();
    let mut input = Vec::new();
    loop {
        match frame::read_blocking(&mut reader, &mut input) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(_) => return 2,
        }
        match server.handle(&input) {
            Ok(None) => {}
            Ok(Some(reply)) => {
                if writer.write_all(reply).is_err() {
                    return 2;
                }
            }
            Err(_) => return 2,
        }
    }
}

impl Server {
    /// Handles one frame body; for a chunk, returns the whole reply frame.
    pub(crate) fn handle(&mut self, body: &[u8]) -> Result<Option<&[u8]>, frame::FrameError> {
        let (header, tail) = frame::split::<ToWorker<'_>>(body)?;
        match header {
            ToWorker::Init { entry } => {
                self.broken_init = initialize(entry, tail).err();
                Ok(None)
            }
            ToWorker::Call { call, entry } => {
                // Drop the previous closure before building the next one.
                drop(self.current.take());
                self.current = Some(Current {
                    call,
                    job: build(entry, tail),
                });
                Ok(None)
            }
            ToWorker::Chunk { call, first } => {
                let refusal = match (&self.broken_init, &mut self.current) {
                    (Some(refusal), _) => refusal.clone(),
                    (None, Some(current)) if current.call == call => {
                        match run_chunk(&mut current.job, call, first, tail, &mut self.output) {
                            Ok(()) => return Ok(Some(&self.output)),
                            Err(refusal) => refusal,
                        }
                    }
                    (None, _) => {
                        Refusal::Unrunnable("the worker was not sent this call's function".into())
                    }
                };
                frame::begin(
                    &mut self.output,
                    &FromWorker::Refused {
                        call,
                        first,
                        reason: refusal,
                    },
                );
                frame::finish(&mut self.output)?;
                Ok(Some(&self.output))
            }
        }
    }
}

fn build(entry: entry::Entry<'_>, setup: &[u8]) -> Result<Box<dyn Job>, Refusal> {
    let start = entry::resolve(entry).map_err(Refusal::Unrunnable)?;
    match unwind::catch(|| start(setup)) {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(reason)) => Err(Refusal::Unrunnable(match entry {
            entry::Entry::Named(name) => format!("`{name}`: {reason}"),
            entry::Entry::Code(_) => reason,
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
    let mut out = Vec::new();
    job.run_chunk(&[], 1, &mut out)
        .map_err(Refusal::Initializer)?;
    match postcard::from_bytes::<Outcome<()>>(&out) {
        Ok(Outcome::Done(())) => Ok(()),
        Ok(Outcome::Panicked(report)) => {
            Err(Refusal::Initializer(format!("it panicked at {report}")))
        }
        Ok(Outcome::Unencodable(reason)) => Err(Refusal::Initializer(reason)),
        Err(e) => Err(Refusal::Initializer(e.to_string())),
    }
}

/// Runs a chunk of `job` into a reply frame in `out`.
fn run_chunk(
    job: &mut Result<Box<dyn Job>, Refusal>,
    call: u64,
    first: u64,
    tail: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Refusal> {
    let job = job.as_mut().map_err(|refusal| refusal.clone())?;
    let (items, count) = tail
        .split_last_chunk::<4>()
        .ok_or_else(|| Refusal::Unrunnable("a chunk came without its item count".into()))?;
    frame::begin(out, &FromWorker::Done { call, first });
    job.run_chunk(items, u32::from_le_bytes(*count), out)
        .map_err(Refusal::Unrunnable)?;
    frame::finish(out)
        .map_err(|e| Refusal::Unrunnable(format!("the chunk's results do not fit in a frame: {e}")))
}

#[cfg(test)]
mod tests {
    //! What a worker does with frames that do not check out: each becomes a
    //! refusal naming what was wrong, never a panic.

    use super::*;
    use crate::entry::Entry;

    #[crate::remote(crate = crate)]
    fn adder(n: u64) -> impl Fn(u64) -> u64 {
        move |x| x + n
    }

    /// `adder`'s wire key, which also holds its name.
    fn adder_key() -> &'static str {
        crate::entry::REMOTES
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

    fn set_up(server: &mut Server, entry: Entry<'_>, setup: &[u8]) {
        let call = frame(&ToWorker::Call { call: 1, entry }, setup);
        assert!(server.handle(&call).unwrap().is_none());
    }

    /// Sends one chunk of call 1 and returns the worker's reply.
    fn run(server: &mut Server, items: &[u8], count: u32) -> FromWorker {
        let mut tail = items.to_vec();
        tail.extend_from_slice(&count.to_le_bytes());
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &tail);
        let reply = server
            .handle(&chunk)
            .unwrap()
            .expect("a chunk gets a reply");
        frame::split::<FromWorker>(&reply[4..]).unwrap().0
    }

    fn refusal(reply: FromWorker) -> String {
        match reply {
            FromWorker::Refused {
                reason: Refusal::Unrunnable(reason),
                ..
            } => reason,
            other => panic!("expected an Unrunnable refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_factory_runs_from_its_name_and_arguments() {
        let mut server = Server::default();
        set_up(
            &mut server,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let items = postcard::to_stdvec(&(10u64,)).unwrap();
        assert!(matches!(
            run(&mut server, &items, 1),
            FromWorker::Done { call: 1, first: 0 }
        ));
    }

    #[test]
    fn an_unknown_name_is_refused_with_that_name() {
        let mut server = Server::default();
        set_up(&mut server, Entry::Named("no::such::factory"), &[]);
        let reason = refusal(run(&mut server, &[], 1));
        assert!(reason.contains("`no::such::factory`"), "{reason}");
    }

    #[test]
    fn arguments_that_do_not_decode_are_refused_naming_the_factory() {
        let mut server = Server::default();
        // A u64 in postcard is a varint: 0xff bytes with no end never decode.
        set_up(&mut server, Entry::Named(adder_key()), &[0xff; 3]);
        let reason = refusal(run(&mut server, &[], 1));
        assert!(reason.contains("forkmap::worker::tests::adder"), "{reason}");
        assert!(reason.contains("do not decode"), "{reason}");
    }

    #[test]
    fn items_that_do_not_decode_are_refused() {
        let mut server = Server::default();
        set_up(
            &mut server,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let reason = refusal(run(&mut server, &[0xff; 3], 1));
        assert!(reason.contains("does not decode"), "{reason}");
        // The worker stays usable: a good chunk of the same call runs.
        let items = postcard::to_stdvec(&(1u64,)).unwrap();
        assert!(matches!(
            run(&mut server, &items, 1),
            FromWorker::Done { .. }
        ));
    }

    #[test]
    fn a_chunk_of_a_call_never_set_up_is_refused() {
        let mut server = Server::default();
        let reason = refusal(run(&mut server, &[], 1));
        assert!(reason.contains("not sent this call's function"), "{reason}");
    }

    #[test]
    fn a_chunk_without_its_count_is_refused() {
        let mut server = Server::default();
        set_up(
            &mut server,
            Entry::Named(adder_key()),
            &postcard::to_stdvec(&(5u64,)).unwrap(),
        );
        let chunk = frame(&ToWorker::Chunk { call: 1, first: 0 }, &[1, 2]);
        let reply = server.handle(&chunk).unwrap().unwrap();
        let reason = refusal(frame::split::<FromWorker>(&reply[4..]).unwrap().0);
        assert!(reason.contains("item count"), "{reason}");
    }
}
