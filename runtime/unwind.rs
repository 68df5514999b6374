//! Panics caught in a task, turned into data that can cross a process
//! boundary.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::error::PanicReport;

thread_local! {
    /// Whether this thread is running a task under [`catch`].
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic in a task on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The backtrace of that panic, when backtraces are asked for.
    static BACKTRACE: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Wraps the panic hook, once per process: a panic in a task is reported to
/// the caller as an [`Error::Panic`](crate::Error::Panic) with its location,
/// so the hook records the location instead of printing it. Panics anywhere
/// else go to the hook that was there before, so a program's own hook keeps
/// working beside a thread or serial pool.
///
/// A pool calls this before it forks any worker, so that a worker never
/// swaps the hook itself: that takes the hook's lock for writing, and
/// another thread of the parent may have held that lock (while it was
/// panicking) at the moment of the fork, leaving the worker's copy locked
/// for good.
#[inline]
pub(crate) fn install_hook() {
    if HOOK.is_completed() {
        return;
    }
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.get() {
                let location = info.location().map(|l| l.to_string());
                LOCATION.with(|slot| *slot.borrow_mut() = location);
                // `capture` reads `RUST_BACKTRACE` once and costs nothing
                // more when backtraces are off.
                let backtrace = Backtrace::capture();
                let backtrace = (backtrace.status() == BacktraceStatus::Captured)
                    .then(|| backtrace.to_string());
                BACKTRACE.with(|slot| *slot.borrow_mut() = backtrace);
            } else {
                previous(info);
            }
        }));
    });
}

/// Whether this thread is running a task under [`catch`]: a panic now is
/// that task's.
#[cfg(feature = "mpi")]
pub(crate) fn in_task() -> bool {
    IN_TASK.get()
}

/// Runs `f`, turning a panic into a [`PanicReport`].
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    install_hook();
    let outer = IN_TASK.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.set(outer);
    result.map_err(|payload| PanicReport {
        message: message(&*payload),
        location: LOCATION.with(|slot| slot.borrow_mut().take()),
        backtrace: BACKTRACE.with(|slot| slot.borrow_mut().take()),
    })
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
