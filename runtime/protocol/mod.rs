//! The wire: everything that passes between the caller and a worker, and
//! the only code that encodes or decodes it.
//!
//! - [`codec`]: the serde format of every value (postcard's, written here so
//!   that a value's own error message survives).
//! - [`message`]: every message, one enum each way, and an item's outcome.
//! - [`frame`]: how messages travel on a byte stream, and the size caps.
//! - [`batch`]: values delimited one by one: a chunk's items, a reply's
//!   outcomes.
//! - [`entry`]: which function a worker runs (code identity).
//! - [`task`]: the user-facing [`Task`](task::Task) trait that describes a
//!   function for the wire; [`job`]: the built closure a worker runs over a
//!   batch of items.

pub(crate) mod batch;
pub(crate) mod codec;
pub(crate) mod entry;
pub(crate) mod frame;
pub(crate) mod job;
pub(crate) mod message;
pub(crate) mod task;
