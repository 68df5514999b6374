//! Turning a call's replies into values and errors: one item's outcome
//! at a time, or a whole `map`'s worth.

use serde::de::DeserializeOwned;

use crate::dispatch::work::{Failure, Reply};
use crate::error::Error;
use crate::protocol::frame::Refusal;
use crate::protocol::job::{self, Outcome};

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
                // The hot loop of `map`: one outcome after the other.
                let body = frame.body();
                let mut at = outcomes;
                for index in first..first + u64::from(count) {
                    match read_outcome(body, &mut at, function, index) {
                        Ok(value) => {
                            self.completed += 1;
                            if self.first.is_none() {
                                self.values.push(value);
                            }
                        }
                        Err(error) => self.fail(error),
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
    /// For a `Done` reply, where the next outcome starts in the frame body.
    at: usize,
    next: u64,
    end: u64,
}

impl Decoding {
    pub(super) fn new(reply: Reply) -> Self {
        let (first, count, at) = match &reply {
            Reply::Done {
                first,
                count,
                outcomes,
                ..
            } => (*first, *count, *outcomes),
            Reply::Failed { first, count, .. } => (*first, *count, 0),
        };
        Decoding {
            reply,
            at,
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
            Reply::Done { frame, .. } => read_outcome(frame.body(), &mut self.at, function, index),
            Reply::Failed { failure, .. } => Err(failure_error(failure, function, at_index(index))),
        };
        Some((index, result))
    }
}

/// Reads the outcome of item `index` at `at` in a reply's body, and moves
/// `at` past it. When it does not decode, `at` moves to the end: the rest of
/// the reply cannot be read either.
fn read_outcome<O: DeserializeOwned>(
    body: &[u8],
    at: &mut usize,
    function: &str,
    index: u64,
) -> Result<O, Error> {
    match job::decode_outcome::<O>(&body[*at..]) {
        Ok((outcome, rest)) => {
            *at = body.len() - rest.len();
            match outcome {
                Outcome::Done(value) => Ok(value),
                Outcome::Panicked(panic) => Err(Error::Panic {
                    function: function.to_owned(),
                    index: at_index(index),
                    panic,
                }),
                Outcome::Unencodable(reason) => Err(Error::Codec {
                    function: function.to_owned(),
                    index: Some(at_index(index)),
                    what: format!("encode the result of item {index}"),
                    reason,
                }),
            }
        }
        Err(e) => {
            *at = body.len();
            Err(Error::Codec {
                function: function.to_owned(),
                index: Some(at_index(index)),
                what: format!("decode the result of item {index}"),
                reason: e.to_string(),
            })
        }
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
        Failure::Refused(Refusal::Undecodable(reason)) => Error::Codec {
            function,
            index: Some(index),
            what: format!("decode the arguments of item {index}"),
            reason: reason.clone(),
        },
        Failure::Refused(Refusal::Initializer(reason)) => Error::Setup {
            function,
            index,
            reason: format!("the pool's initializer failed in this worker: {reason}"),
        },
        Failure::Spawn(reason) => Error::Spawn(std::io::Error::other(reason.clone())),
        Failure::Codec(reason) => Error::Codec {
            function,
            index: Some(index),
            what: format!("run item {index}"),
            reason: reason.clone(),
        },
    }
}
