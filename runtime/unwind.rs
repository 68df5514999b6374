//! Panics caught in a worker, turned into data that crosses the process boundary.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use crate::error::PanicReport;

thread_local! {
    /// Where the last panic on this thread happened, recorded by the hook.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook of a worker process: a panic in a task is reported
/// to the caller as an [`Error::Panic`](crate::Error::Panic) with its location,
/// so the worker records the location instead of printing to stderr.
pub(crate) fn install_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| l.to_string());
        LOCATION.with(|slot| *slot.borrow_mut() = location);
    }));
}

/// Runs `f`, turning a panic into a [`PanicReport`].
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, PanicReport> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| PanicReport {
        message: message(&*payload),
        location: LOCATION.with(|slot| slot.borrow_mut().take()),
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
