//! The pool that runs everything in the caller.

use crate::api::engine::{CallOptions, Engine, Kind};
use crate::api::pool::{engine_pool, inherent_calls};
use crate::dispatch::scheduler::WorkerOptions;
use crate::platform::link::DEFAULT_RING_SIZE;

/// A pool without workers: every call runs in the calling thread, one item
/// after the other, through the same encoding as the other pools.
///
/// Use it to debug (a debugger, a profiler and `println!` see the task in
/// your own thread) and as the baseline of a comparison. Async calls run
/// before they return, so their handles are ready at once.
///
/// ```
/// use forkmap::SerialPool;
///
/// let pool = SerialPool::new();
/// assert_eq!(pool.map(|x: u64| x * 2, 0..4)?, [0, 2, 4, 6]);
/// assert_eq!(pool.workers(), 1);
/// # Ok::<(), forkmap::Error>(())
/// ```
pub struct SerialPool {
    engine: Engine,
}

impl SerialPool {
    /// A serial pool.
    pub fn new() -> Self {
        let workers = WorkerOptions {
            count: 1,
            max_tasks: None,
            init: None,
            memory_limit: None,
            ring_size: DEFAULT_RING_SIZE,
        };
        let engine = Engine::start(Kind::Serial, workers, CallOptions::default())
            .expect("a serial pool starts nothing that can fail");
        SerialPool { engine }
    }
}

impl Default for SerialPool {
    fn default() -> Self {
        SerialPool::new()
    }
}

inherent_calls!(SerialPool);
engine_pool!(SerialPool);
