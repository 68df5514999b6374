//! The wire: what passes between the caller and a worker, and the only code
//! that encodes or decodes it. [`frame`] frames messages and caps their size,
//! [`entry`] says which function a worker runs, [`job`] runs a decoded call
//! over its items, and [`task`] is the user-facing trait that describes a
//! function for the wire.

pub(crate) mod entry;
pub(crate) mod frame;
pub(crate) mod job;
pub(crate) mod task;
