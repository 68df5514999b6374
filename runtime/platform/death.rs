//! How a process ended, as the pool reports it.

use std::fmt;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Death {
    /// It exited with this status code (`std::process::exit`).
    Exit(i32),
    /// It was killed by this signal (a crash, an abort, or `kill` from outside).
    Signal(i32),
    /// It ended, but its status could not be read (something else in the
    /// program reaped it, for example a `waitpid(-1)` loop).
    Unknown,
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Death::Exit(code) => write!(f, "exited with code {code}"),
            Death::Signal(signal) => match signal_name(signal) {
                Some(name) => write!(f, "was killed by signal {signal} ({name})"),
                None => write!(f, "was killed by signal {signal}"),
            },
            Death::Unknown => f.write_str("ended, and its exit status could not be read"),
        }
    }
}

/// How a worker was reaped: how it ended, and whether it had to be killed
/// because it lived on after its channel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// How it ended.
    pub(crate) death: Death,
    /// It had not ended a moment after its channel closed, and was killed:
    /// something in it closed its side of the channel (a task that closed
    /// one of its descriptors), and its death says nothing of what.
    pub(crate) lingered: bool,
}

impl Reaped {
    /// A worker whose end could not be seen.
    pub(crate) const UNKNOWN: Reaped = Reaped {
        death: Death::Unknown,
        lingered: false,
    };
}

/// The conventional name of a signal number.
fn signal_name(number: i32) -> Option<&'static str> {
    Signal::try_from(number).ok().map(Signal::as_str)
}
