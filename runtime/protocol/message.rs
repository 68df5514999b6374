//! Every message on the wire: [`ToWorker`] from the pool to a worker,
//! [`FromWorker`] back, and what they carry.
//!
//! A message is a frame's header; what follows it in the frame, its tail,
//! is raw bytes whose meaning the header gives: a task's setup data, a
//! [batch](crate::protocol::batch) of argument tuples, or a batch of
//! [`Outcome`]s.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PanicReport;
use crate::platform::Death;
use crate::protocol::codec::{self, CodecError};
use crate::protocol::entry::Entry;

/// What the pool says to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker<'a> {
    /// Build the closure of this call; the tail is the task's setup data.
    /// Each of its items may run at most `timeout`: the worker posts when
    /// each starts.
    Call {
        call: u64,
        #[serde(borrow)]
        entry: Entry<'a>,
        timeout: Option<Duration>,
    },
    /// Build the initializer and run it once; the tail is its setup data.
    /// Sent first to every new worker of a pool that has one.
    Init {
        #[serde(borrow)]
        entry: Entry<'a>,
    },
    /// Run items of the call, numbered from `first`; the tail is a batch of
    /// their argument tuples.
    Chunk { call: u64, first: u64 },
}

/// What a worker says to the pool: replies that together cover each
/// chunk's items in order, one or more per chunk.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// `count` items from `first` ran; the tail is a batch of their
    /// outcomes.
    Done { call: u64, first: u64, count: u32 },
    /// `count` items from `first` have no outcome.
    Failed {
        call: u64,
        first: u64,
        count: u32,
        failure: Failure,
    },
}

/// What the pool's rank of an MPI job says to another rank, beside the
/// frames it relays to that rank's workers.
#[cfg(feature = "mpi")]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToRank {
    /// Start a pool of worker processes (as many as the rank's host has
    /// cores, unless `workers` says), with these options, and say so.
    Start {
        workers: Option<u32>,
        max_tasks: Option<u64>,
        memory_limit: Option<u64>,
        /// The size of each of a worker's rings.
        ring_size: u64,
        /// The initializer's `Init` frame.
        init: Option<Vec<u8>>,
    },
    /// Stop running the items of this call: it was cancelled.
    Stop { call: u64 },
    /// End the pool; another may be started.
    Release,
    /// The job ends: end the pool and leave.
    Exit,
}

/// What a rank says back to the pool's rank.
#[cfg(feature = "mpi")]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromRank {
    /// Its pool runs `workers` workers, in a program whose build and
    /// `#[remote]` factories are these.
    Started {
        build: u64,
        remotes: u64,
        workers: u32,
    },
    /// Its pool could not start, for this reason.
    Failed(String),
}

/// The longest encoding of a [`FromWorker::Done`] header: a variant tag and
/// three varints.
pub(crate) const MAX_DONE_HEADER: usize = 1 + 10 + 10 + 5;

/// Why items have no outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// The worker could not set the call up.
    Refused(Refusal),
    /// The worker died while running the item.
    Died(Death),
    /// The item ran past its call's timeout, and the worker was killed.
    TimedOut(Duration),
    /// The worker's memory grew past this limit, and it was killed.
    OutOfMemory(u64),
    /// The worker died while building the call's closure, or while running
    /// the pool's initializer.
    DiedSettingUp { death: Death, initializer: bool },
    /// No worker could be started to run it.
    Spawn(String),
    /// The item's arguments could not be encoded, for this reason.
    Unencodable(String),
    /// Its call was cancelled before it ran.
    Cancelled,
    /// Its data could not be sent, or a reply did not check out.
    Codec(String),
}

/// Why a worker could not run a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The factory body panicked while building the closure.
    FactoryPanicked(PanicReport),
    /// The function or the data did not check out.
    Unrunnable(String),
    /// The pool's initializer failed in this worker.
    Initializer(String),
}

/// The outcome of one item, as it travels back to the caller.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<T> {
    /// The closure returned this value.
    Done(T),
    /// The closure panicked (or the item's arguments panicked while they
    /// decoded, as `decoding` says).
    Panicked { report: PanicReport, decoding: bool },
    /// The closure returned, but its value could not be encoded.
    Unencodable(String),
    /// The item's arguments could not be decoded.
    Undecodable(String),
}

/// The byte the codec writes for the variant [`Outcome::Done`]: its index.
const DONE: u8 = 0;

/// Appends the encoding of `Outcome::Done(value)`, the same bytes as the
/// enum's, without going through it: this runs once per item.
#[inline]
pub(crate) fn encode_done<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    out.push(DONE);
    codec::encode(value, out).inspect_err(|_| {
        out.pop();
    })
}

/// Whether an encoded outcome is a value (`Done`), told from its first byte
/// without decoding it.
#[cfg(feature = "progress")]
pub(crate) fn is_done(outcome: &[u8]) -> bool {
    outcome.first() == Some(&DONE)
}

/// Reads the value of a `Done` outcome that takes the whole of `bytes`, the
/// common case, with nothing else to do: `None` for anything else,
/// which [`decode_outcome`] then reads.
#[inline]
pub(crate) fn decode_done<O: DeserializeOwned>(bytes: &[u8]) -> Option<O> {
    match bytes.split_first() {
        Some((&DONE, value)) => codec::decode(value).ok(),
        _ => None,
    }
}

/// Reads an outcome that takes the whole of `bytes`. A `Done` outcome, the
/// common one, is read without going through the enum.
#[inline]
pub(crate) fn decode_outcome<O: DeserializeOwned>(bytes: &[u8]) -> Result<Outcome<O>, CodecError> {
    match bytes.split_first() {
        Some((&DONE, value)) => codec::decode(value).map(Outcome::Done),
        _ => codec::decode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_encoding_of_done_is_the_enums() {
        for value in [0u64, 1, 300, u64::MAX] {
            let mut quick = Vec::new();
            encode_done(&value, &mut quick).unwrap();
            let mut slow = Vec::new();
            codec::encode(&Outcome::Done(value), &mut slow).unwrap();
            assert_eq!(quick, slow);
            assert!(matches!(decode_outcome::<u64>(&quick), Ok(Outcome::Done(v)) if v == value));
        }
        let mut panicked = Vec::new();
        let report = PanicReport {
            message: "no".into(),
            location: None,
            backtrace: None,
        };
        let outcome = Outcome::<u64>::Panicked {
            report,
            decoding: false,
        };
        codec::encode(&outcome, &mut panicked).unwrap();
        assert!(matches!(
            decode_outcome::<u64>(&panicked),
            Ok(Outcome::Panicked { report, .. }) if report.message == "no"
        ));
    }

    #[test]
    fn an_outcome_with_bytes_left_over_is_an_error() {
        let mut bytes = Vec::new();
        encode_done(&7u64, &mut bytes).unwrap();
        bytes.push(0);
        let error = decode_outcome::<u64>(&bytes).unwrap_err();
        assert!(error.to_string().contains("left unread"), "{error}");
    }
}
