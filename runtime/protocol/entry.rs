//! How a worker learns which code to run from the bytes the parent sends.
//!
//! Two kinds of entry travel on the wire:
//!
//! - [`Entry::Named`]: a `#[remote]` factory, by its stable key (module path,
//!   function name, the line and column of `#[remote]`, since two factories
//!   of one name can share a module path inside two functions, and a hash
//!   of its code, since a macro can make two of one name in one place).
//!   Two factories whose keys are equal have the same code, and either
//!   serves.
//!   Every `#[remote]` item registers its start function in [`REMOTES`] at
//!   link time, so a worker looks the key up; a key it does not know is a
//!   clear error that names the function.
//! - [`Entry::Code`]: a plain function or a closure that captures nothing. Such
//!   a type is monomorphic code with no registry entry, so the parent sends the
//!   offset of its start function from a fixed point of the program, with a
//!   check value, and the worker turns the offset back into a function pointer
//!   only if the check value matches (`platform::code`, where the `unsafe` and
//!   its argument are).

use std::any::type_name;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::platform;
use crate::protocol::codec::{self, CodecError};
use crate::protocol::job::{job, Job};
use crate::protocol::task::CallWith;

/// Builds the job a worker runs from the data the task carries.
pub type StartFn = fn(&[u8]) -> Result<Job, String>;

/// A `#[remote]` factory's registration: its wire key, name and start
/// function.
#[derive(Debug)]
pub struct RemoteEntry {
    /// The name, where `#[remote]` stands and a hash of the code, e.g.
    /// `my_crate::models::power_factory@12:1#5f0c…`: two factories with one
    /// key have the same code.
    pub key: &'static str,
    /// Module path and function name, e.g. `my_crate::models::power_factory`.
    pub name: &'static str,
    /// Decodes the factory's arguments and runs its body.
    pub start: StartFn,
}

/// Every `#[remote]` factory linked into this program.
// linkme places the slice in a link section of its own, which the
// `unsafe_code` lint counts; linkme checks every element's type.
#[allow(unsafe_code)]
#[linkme::distributed_slice]
pub static REMOTES: [RemoteEntry];

/// Where a worker finds a task's code, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry<'a> {
    /// A `#[remote]` factory, looked up by key in [`REMOTES`].
    Named(&'a str),
    /// A start function at `offset` from a fixed point of the program, and
    /// the offset's check value.
    Code { offset: i64, check: u64 },
}

/// A task's entry and the name its errors carry.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub(crate) entry: Entry<'static>,
    pub(crate) name: &'static str,
}

/// Why a task's data could not be encoded: the codec's message, in a type of
/// forkmap's own so that no dependency's error shows in a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl From<CodecError> for EncodeError {
    fn from(error: CodecError) -> Self {
        EncodeError(error.to_string())
    }
}

/// Describes a `#[remote]` value: appends its fields to `setup`.
pub fn describe_remote<T: Serialize>(
    value: &T,
    key: &'static str,
    name: &'static str,
    setup: &mut Vec<u8>,
) -> Result<Described, EncodeError> {
    codec::encode(value, setup)?;
    Ok(Described {
        entry: Entry::Named(key),
        name,
    })
}

/// Decodes a `#[remote]` value's fields in the worker.
pub fn decode_setup<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    codec::decode(bytes).map_err(|e| format!("the factory's arguments do not decode: {e}"))
}

/// Describes a plain function or non-capturing closure `F`.
pub(crate) fn plain<F, Args>() -> Described
where
    F: CallWith<Args> + Copy + 'static,
    F::Output: Serialize,
    Args: DeserializeOwned,
{
    let start: StartFn = start_plain::<F, Args>;
    let (offset, check) = platform::code::code_offset(start);
    Described {
        entry: Entry::Code { offset, check },
        name: type_name::<F>(),
    }
}

/// Builds the job of a plain function or non-capturing closure `F`.
///
/// `F` is zero-sized: every public call that takes a task evaluates
/// `Task::__CAPTURES_NOTHING`, which fails the build for any other closure.
fn start_plain<F, Args>(setup: &[u8]) -> Result<Job, String>
where
    F: CallWith<Args> + Copy + 'static,
    F::Output: Serialize,
    Args: DeserializeOwned,
{
    if !setup.is_empty() {
        return Err(format!(
            "`{}` carries no data, but {} bytes came with it",
            type_name::<F>(),
            setup.len()
        ));
    }
    let f: F = platform::code::copy_of_zero_sized();
    Ok(job::<Args, F>(f))
}

/// A number that tells apart programs with different sets of `#[remote]`
/// factories: a hash of their keys.
#[cfg(feature = "mpi")]
pub(crate) fn remotes_identity() -> u64 {
    let mut keys: Vec<&str> = REMOTES.iter().map(|remote| remote.key).collect();
    keys.sort_unstable();
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&keys, &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// Finds the start function of an entry received from the parent, and for
/// a `#[remote]` factory its name.
pub(crate) fn resolve(entry: Entry<'_>) -> Result<(StartFn, Option<&'static str>), String> {
    match entry {
        Entry::Named(key) => REMOTES
            .iter()
            .find(|remote| remote.key == key)
            .map(|remote| (remote.start, Some(remote.name)))
            .ok_or_else(|| {
                format!("no #[remote] factory `{key}` is linked into the worker's program")
            }),
        Entry::Code {
            offset,
            check: sent,
        } => platform::code::function_at(offset, sent)
            .map(|start| (start, None))
            .ok_or_else(|| {
                format!(
                    "the code of the function does not check out (offset {offset:#x}): \
                 the frame was not made by this program"
                )
            }),
    }
}
