//! What users call: the [`Pool`](pool::Pool) trait, the three pools, their
//! builder, the handles of asynchronous calls and the iterators of `imap`.
//! [`engine`] is the one place where a pool's backend is chosen.

pub(crate) mod builder;
pub(crate) mod engine;
pub(crate) mod handle;
pub(crate) mod init;
#[cfg(feature = "mpi")]
pub(crate) mod mpi_pool;
pub(crate) mod pool;
pub(crate) mod process_pool;
#[cfg(feature = "mpi")]
pub(crate) mod rank;
pub(crate) mod serial_pool;
pub(crate) mod stream;
pub(crate) mod thread_pool;
pub(crate) mod view;
