//! How a worker learns which code to run from the bytes the parent sends.
//!
//! Two kinds of entry travel on the wire:
//!
//! - [`Entry::Named`]: a `#[remote]` factory, by its stable key (module path,
//!   function name, and the line and column of `#[remote]`, since two
//!   factories of one name can share a module path inside two functions).
//!   Every `#[remote]` item registers its start function in [`REMOTES`] at
//!   link time, so a worker looks the key up; a key it does not know is a
//!   clear error that names the function.
//! - [`Entry::Code`]: a plain function or a closure that captures nothing. Such
//!   a type is monomorphic code with no registry entry, so the parent sends the
//!   offset of its start function from [`anchor`], with a check value, and the
//!   worker turns the offset back into a function pointer only if the check
//!   value matches. Why that is sound is written next to the `unsafe` below.

use std::any::type_name;
use std::mem::size_of;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frame;
use crate::job::{job, Job};
use crate::task::CallWith;

/// Builds the job a worker runs from the data the task carries.
pub type StartFn = fn(&[u8]) -> Result<Box<dyn Job>, String>;

/// A `#[remote]` factory's registration: its wire key, name and start
/// function.
#[derive(Debug)]
pub struct RemoteEntry {
    /// The name and where `#[remote]` stands, e.g.
    /// `my_crate::models::power_factory@12:1`: unique in a program.
    pub key: &'static str,
    /// Module path and function name, e.g. `my_crate::models::power_factory`.
    pub name: &'static str,
    /// Decodes the factory's arguments and runs its body.
    pub start: StartFn,
}

/// Every `#[remote]` factory linked into this program.
#[linkme::distributed_slice]
pub static REMOTES: [RemoteEntry];

/// Where a worker finds a task's code, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Entry<'a> {
    /// A `#[remote]` factory, looked up by key in [`REMOTES`].
    Named(&'a str),
    /// A start function at `offset` from [`anchor`], and the offset's
    /// [`check`] value.
    Code { offset: i64, check: u64 },
}

/// A task's entry and the name its errors carry.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub(crate) entry: Entry<'static>,
    pub(crate) name: &'static str,
}

/// Describes a `#[remote]` value: appends its fields to `setup`.
pub fn describe_remote<T: Serialize>(
    value: &T,
    key: &'static str,
    name: &'static str,
    setup: &mut Vec<u8>,
) -> Result<Described, postcard::Error> {
    frame::encode_into(value, setup)?;
    Ok(Described {
        entry: Entry::Named(key),
        name,
    })
}

/// Decodes a `#[remote]` value's fields in the worker.
pub fn decode_setup<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("the factory's arguments do not decode: {e}"))
}

/// Describes a plain function or non-capturing closure `F`.
pub(crate) fn plain<F, Args>() -> Described
where
    F: CallWith<Args> + Copy + 'static,
    F::Output: Serialize,
    Args: DeserializeOwned + 'static,
{
    let start: StartFn = start_plain::<F, Args>;
    let offset = (start as usize as i64).wrapping_sub(anchor_address());
    Described {
        entry: Entry::Code {
            offset,
            check: check(offset),
        },
        name: type_name::<F>(),
    }
}

/// The message a user sees when a capturing closure is passed to a pool.
const CAPTURES: &str = "forkmap: this closure captures variables, and a worker process cannot \
    rebuild what it captured; move it into a factory function marked #[remote] that returns \
    the closure";

fn start_plain<F, Args>(setup: &[u8]) -> Result<Box<dyn Job>, String>
where
    F: CallWith<Args> + Copy + 'static,
    F::Output: Serialize,
    Args: DeserializeOwned + 'static,
{
    const { assert!(size_of::<F>() == 0, "{}", CAPTURES) };
    if !setup.is_empty() {
        return Err(format!(
            "`{}` carries no data, but {} bytes came with it",
            type_name::<F>(),
            setup.len()
        ));
    }
    // SAFETY: `F` is zero-sized (asserted above, when this function is
    // instantiated, which `plain` does before any entry for `F` is made), so a value of it has no bytes that
    // could be uninitialised. `F` is `Copy`, so it owns nothing and has no
    // drop glue, and a holder of one may duplicate it at will: the parent held
    // an `F` when it described the task, and the value made here is exactly a
    // copy of that one. `F` is a function item or a closure that captures only
    // zero-sized `Copy` values; neither has any other invariant.
    let f: F = unsafe { std::mem::zeroed() };
    Ok(job::<Args, F>(f))
}

/// The fixed point in the program image that code offsets are measured from.
#[inline(never)]
fn anchor() {}

fn anchor_address() -> i64 {
    let anchor: fn() = anchor;
    anchor as usize as i64
}

/// The check value of a code offset: a hash of it, keyed with forkmap's
/// version. Bytes that were not made by [`plain`] (corrupted, or not a frame
/// at all) match it with a chance of one in 2^64. It does not tell one
/// binary from another: a backend that runs workers from another copy of the
/// program must check that both are the same build first.
fn check(offset: i64) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(
        &(offset, "forkmap code entry", env!("CARGO_PKG_VERSION")),
        &mut hasher,
    );
    std::hash::Hasher::finish(&hasher)
}

/// Finds the start function of an entry received from the parent.
pub(crate) fn resolve(entry: Entry<'_>) -> Result<StartFn, String> {
    match entry {
        Entry::Named(key) => REMOTES
            .iter()
            .find(|remote| remote.key == key)
            .map(|remote| remote.start)
            .ok_or_else(|| {
                format!("no #[remote] factory `{key}` is linked into the worker's program")
            }),
        Entry::Code {
            offset,
            check: sent,
        } => {
            if sent != check(offset) {
                return Err(format!(
                    "the code of the function does not check out (offset {offset:#x}): \
                     the frame was not made by this program"
                ));
            }
            let address = anchor_address().wrapping_add(offset) as usize;
            // SAFETY: an `Entry::Code` is made by `plain`, in the parent, from
            // a real `StartFn` of this program image: the offset is that
            // function's address minus `anchor`'s, and its check value is
            // `check(offset)`. Workers are forked from the parent or from the
            // fork server, itself forked from the parent, so they run the same
            // image at the same load address, and `anchor + offset` is that
            // same `StartFn` (a backend that runs the binary elsewhere must
            // first check that both sides run the same build). The entry
            // reaches the worker only through the pool's own socket pair,
            // which no other process holds (every other worker closes its copy
            // right after its fork), so the worker decodes the value the
            // parent encoded; and bytes that somehow were not (a bug, memory
            // corruption) pass the check above with a chance of one in 2^64.
            // Every start function has the type `StartFn`, so the pointer is
            // called at its real type.
            Ok(unsafe { std::mem::transmute::<usize, StartFn>(address) })
        }
    }
}
