//! Turning a call's replies into values and errors: one item's outcome at a
//! time ([`Decoding`]), or a whole `map`'s worth ([`Tally`]). A value whose
//! decoding fails, leaves bytes unread or panics is its own item's error.

use serde::de::DeserializeOwned;

use crate::dispatch::work::Reply;
use crate::error::Error;
use crate::protocol::batch::{Batch, Left, Values};
use crate::protocol::message::{decode_done, decode_outcome, Failure, Outcome, Refusal};
use crate::unwind;

/// What a `map` has got so far: the values, until an item fails, and how
/// many items completed and failed. It takes every result, even after a
/// failure, so that each item runs.
pub(super) struct Tally<O> {
    values: Vec<O>,
    completed: usize,
    failed: usize,
    first: Option<Error>,
}

impl<O: DeserializeOwned> Tally<O> {
    pub(super) fn with_capacity(items: usize) -> Self {
        Tally {
            values: Vec::with_capacity(items),
            completed: 0,
            failed: 0,
            first: None,
        }
    }

    /// Takes in every result of a reply. An error of the pool itself (it
    /// closed, a worker could not start) ends the call as it is.
    pub(super) fn add_reply(&mut self, reply: Reply, function: &str) -> Result<(), Error> {
        match reply {
            Reply::Done {
                first,
                count,
                frame,
                outcomes,
            } => {
                // The dispatcher checked the batch when the reply came.
                let mut values = Batch::reopen(&frame.body()[outcomes..]).iter();
                let (mut index, end) = (first, first + u64::from(count));
                // The hot loop of `map`, under one panic guard: a panic
                // while a value decodes fails that item, and the loop goes
                // on after it.
                while index < end {
                    let ran = unwind::catch(|| {
                        while index < end {
                            let at = index;
                            index += 1;
                            let Some(bytes) = values.next() else {
                                let reason = "the reply has fewer outcomes than items";
                                self.fail(unreadable(function, at, reason));
                                continue;
                            };
                            match read_outcome(bytes, function, at) {
                                Ok(value) => {
                                    self.completed += 1;
                                    if self.first.is_none() {
                                        self.values.push(value);
                                    }
                                }
                                Err(error) => self.fail(error),
                            }
                        }
                    });
                    if let Err(report) = ran {
                        self.fail(decode_panicked(function, index - 1, &report));
                    }
                }
            }
            Reply::Failed {
                first,
                count,
                failure,
            } => {
                for index in first..first + u64::from(count) {
                    match failure_error(&failure, function, at_index(index)) {
                        error @ Error::Spawn(_) => return Err(error),
                        error => self.fail(error),
                    }
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, error: Error) {
        self.failed += 1;
        self.values = Vec::new();
        self.first.get_or_insert(error);
    }

    /// The values, or [`Error::Incomplete`] with the first item's failure.
    pub(super) fn finish(self) -> Result<Vec<O>, Error> {
        match self.first {
            None => Ok(self.values),
            Some(first) => Err(Error::Incomplete {
                completed: self.completed,
                failed: self.failed,
                first: Box::new(first),
            }),
        }
    }
}

pub(super) fn at_index(index: u64) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// A reply being handed out item by item.
pub(super) struct Decoding {
    reply: Reply,
    /// For a `Done` reply, the outcomes still to read.
    left: Left,
    next: u64,
    end: u64,
}

impl Decoding {
    pub(super) fn new(reply: Reply) -> Self {
        let (first, count, left) = match &reply {
            Reply::Done {
                first,
                count,
                frame,
                outcomes,
            } => {
                let left = Batch::reopen(&frame.body()[*outcomes..]).iter().left();
                (*first, *count, left)
            }
            Reply::Failed { first, count, .. } => (*first, *count, Values::empty().left()),
        };
        Decoding {
            reply,
            left,
            next: first,
            end: first + u64::from(count),
        }
    }

    /// The next item's index and result, or `None` when the reply is used up.
    pub(super) fn next<O: DeserializeOwned>(
        &mut self,
        function: &str,
    ) -> Option<(u64, Result<O, Error>)> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let result = match &self.reply {
            Reply::Done {
                frame, outcomes, ..
            } => {
                let mut values = Values::resume(&frame.body()[*outcomes..], self.left);
                let bytes = values.next();
                self.left = values.left();
                match bytes {
                    Some(bytes) => unwind::catch(|| read_outcome(bytes, function, index))
                        .unwrap_or_else(|report| Err(decode_panicked(function, index, &report))),
                    None => Err(unreadable(
                        function,
                        index,
                        "the reply has fewer outcomes than items",
                    )),
                }
            }
            Reply::Failed { failure, .. } => Err(failure_error(failure, function, at_index(index))),
        };
        Some((index, result))
    }
}

/// Reads the outcome of item `index`, which takes the whole of `bytes`.
#[inline]
fn read_outcome<O: DeserializeOwned>(bytes: &[u8], function: &str, index: u64) -> Result<O, Error> {
    match decode_done(bytes) {
        Some(value) => Ok(value),
        None => read_other_outcome(bytes, function, index),
    }
}

/// Reads an outcome that is not a value that decodes: the item's error.
#[cold]
#[inline(never)]
fn read_other_outcome<O: DeserializeOwned>(
    bytes: &[u8],
    function: &str,
    index: u64,
) -> Result<O, Error> {
    let codec_error = |what: String, reason: String| Error::Codec {
        function: function.to_owned(),
        index: Some(at_index(index)),
        what,
        reason,
    };
    match decode_outcome::<O>(bytes) {
        Ok(Outcome::Done(value)) => Ok(value),
        Ok(Outcome::Panicked {
            report,
            decoding: false,
        }) => Err(Error::Panic {
            function: function.to_owned(),
            index: at_index(index),
            panic: report,
        }),
        Ok(Outcome::Panicked {
            report,
            decoding: true,
        }) => Err(codec_error(
            format!("decode the arguments of item {index}"),
            format!("their Deserialize panicked at {report}"),
        )),
        Ok(Outcome::Unencodable(reason)) => Err(codec_error(
            format!("encode the result of item {index}"),
            reason,
        )),
        Ok(Outcome::Undecodable(reason)) => Err(codec_error(
            format!("decode the arguments of item {index}"),
            reason,
        )),
        Err(e) => Err(codec_error(
            format!("decode the result of item {index}"),
            e.to_string(),
        )),
    }
}

/// The error of an item whose result's `Deserialize` panicked here.
fn decode_panicked(function: &str, index: u64, report: &crate::error::PanicReport) -> Error {
    Error::Codec {
        function: function.to_owned(),
        index: Some(at_index(index)),
        what: format!("decode the result of item {index}"),
        reason: format!("its Deserialize panicked at {report}"),
    }
}

/// The error of an item whose reply did not check out.
fn unreadable(function: &str, index: u64, reason: &str) -> Error {
    Error::Codec {
        function: function.to_owned(),
        index: Some(at_index(index)),
        what: format!("read the reply of item {index}"),
        reason: reason.to_owned(),
    }
}

fn failure_error(failure: &Failure, function: &str, index: usize) -> Error {
    let function = function.to_owned();
    match failure {
        Failure::Died(death) => Error::WorkerDied {
            function,
            index,
            death: *death,
        },
        Failure::TimedOut(timeout) => Error::Timeout {
            function,
            index,
            timeout: *timeout,
        },
        Failure::OutOfMemory(limit) => Error::OutOfMemory {
            function,
            index,
            limit: *limit,
        },
        Failure::DiedSettingUp { death, initializer } => Error::Setup {
            function,
            index,
            reason: if *initializer {
                format!("the worker {death} while it ran the pool's initializer")
            } else {
                format!("the worker {death} while it ran the factory")
            },
        },
        Failure::Refused(Refusal::FactoryPanicked(panic)) => Error::Setup {
            function,
            index,
            reason: format!("the factory panicked at {panic}"),
        },
        Failure::Refused(Refusal::Unrunnable(reason)) => Error::Setup {
            function,
            index,
            reason: reason.clone(),
        },
        Failure::Refused(Refusal::Initializer(reason)) => Error::Setup {
            function,
            index,
            reason: format!("the pool's initializer failed in this worker: {reason}"),
        },
        Failure::Spawn(reason) => Error::Spawn(std::io::Error::other(reason.clone())),
        // Only a call that nobody waits for any more is cancelled.
        Failure::Cancelled => Error::Closed,
        Failure::Unencodable(reason) => Error::Codec {
            function,
            index: Some(index),
            what: format!("encode the arguments of item {index}"),
            reason: reason.clone(),
        },
        Failure::Codec(reason) => Error::Codec {
            function,
            index: Some(index),
            what: format!("run item {index}"),
            reason: reason.clone(),
        },
    }
}
