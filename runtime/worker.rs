//! The loop a worker process runs: read a frame, build or run, reply.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::entry;
use crate::frame::{self, FromWorker, Refusal, ToWorker};
use crate::job::Job;
use crate::unwind;

/// The closure of the call the worker is running, or why it could not be built.
struct Current {
    call: u64,
    job: Result<Box<dyn Job>, Refusal>,
}

/// Serves the parent until it closes the channel; returns the exit code.
pub(crate) fn run(channel: UnixStream) -> i32 {
    unwind::install_hook();
    let mut reader = BufReader::with_capacity(64 * 1024, &channel);
    let mut writer = &channel;
    let mut current: Option<Current> = None;
    let mut input = Vec::new();
    let mut output = Vec::new();
    loop {
        match frame::read_blocking(&mut reader, &mut input) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(_) => return 2,
        }
        let Ok((header, tail)) = frame::split::<ToWorker<'_>>(&input) else {
            return 2;
        };
        match header {
            ToWorker::Call { call, entry } => {
                // Drop the previous closure before building the next one.
                drop(current.take());
                current = Some(Current {
                    call,
                    job: build(entry, tail),
                });
            }
            ToWorker::Chunk { call, first } => {
                let current = current.as_mut().filter(|c| c.call == call);
                let reply = run_chunk(current, call, first, tail, &mut output);
                if reply.is_err() || writer.write_all(&output).is_err() {
                    return 2;
                }
            }
        }
    }
}

fn build(entry: entry::Entry<'_>, setup: &[u8]) -> Result<Box<dyn Job>, Refusal> {
    let start = entry::resolve(entry).map_err(Refusal::Unrunnable)?;
    match unwind::catch(|| start(setup)) {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(reason)) => Err(Refusal::Unrunnable(reason)),
        Err(report) => Err(Refusal::FactoryPanicked(report)),
    }
}

/// Runs a chunk into a reply frame in `out`.
fn run_chunk(
    current: Option<&mut Current>,
    call: u64,
    first: u64,
    items: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), frame::FrameError> {
    let refusal = match current.map(|c| &mut c.job) {
        None => Refusal::Unrunnable("the worker was not sent this call's function".into()),
        Some(Err(refusal)) => refusal.clone(),
        Some(Ok(job)) => match items.split_last_chunk::<4>() {
            None => Refusal::Unrunnable("a chunk came without its item count".into()),
            Some((items, count)) => {
                frame::begin(out, &FromWorker::Done { call, first });
                match job.run_chunk(items, u32::from_le_bytes(*count), out) {
                    Ok(()) => match frame::finish(out) {
                        Ok(()) => return Ok(()),
                        Err(e) => Refusal::Unrunnable(format!(
                            "the chunk's results do not fit in a frame: {e}"
                        )),
                    },
                    Err(reason) => Refusal::Unrunnable(reason),
                }
            }
        },
    };
    frame::begin(
        out,
        &FromWorker::Refused {
            call,
            first,
            reason: refusal,
        },
    );
    frame::finish(out)
}
