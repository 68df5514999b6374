//! The wire: what passes between the caller and a worker, and the only code
//! that encodes or decodes it. [`codec`] is the serde format of every value
//! on the wire, [`frame`] frames messages and caps their size,
//! [`entry`] says which function a worker runs, [`job`] runs a decoded call
//! over its items, and [`task`] is the user-facing trait that describes a
//! function for the wire.

// Used by the switch to this codec, in progress.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod codec;
pub(crate) mod entry;
pub(crate) mod frame;
pub(crate) mod job;
pub(crate) mod task;
