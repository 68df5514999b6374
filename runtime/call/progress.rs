//! A call's progress bar (feature `progress`): items done of the total,
//! rate and time left, failures counted apart. Counted as replies come in,
//! without decoding a value: an outcome's first byte says whether it is a
//! value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::dispatch::work::Reply;
use crate::protocol::batch::Batch;
use crate::protocol::message::is_done;

/// Which bar a call shows.
#[derive(Debug)]
pub(crate) enum Shown {
    /// One of forkmap's own, on stderr: the pool's `progress(true)`.
    Own,
    /// The caller's: a view's `with_progress(bar)`, whose calls all count
    /// their failures together.
    Bar(CallersBar),
}

/// A bar of the caller's, given to a view, as its calls share it.
#[derive(Debug, Clone)]
pub(crate) struct CallersBar {
    bar: ProgressBar,
    /// How many items of the view's calls failed.
    failed: Arc<AtomicU64>,
    /// The bar had no length when given: each call of known length adds
    /// its own.
    lengthen: bool,
}

impl CallersBar {
    pub(crate) fn new(bar: ProgressBar) -> Self {
        CallersBar {
            lengthen: bar.length().is_none(),
            bar,
            failed: Arc::default(),
        }
    }
}

/// A call's bar, as its results come in.
pub(crate) struct Progress {
    bar: ProgressBar,
    /// How many items failed, of this call or of every call of its view.
    failed: Arc<AtomicU64>,
    /// forkmap's own bar, which ends with the call.
    own: bool,
}

impl Progress {
    /// The bar of a call of `function` over `len` items, when known.
    pub(crate) fn start(shown: Shown, function: &str, len: Option<u64>) -> Self {
        let own = matches!(shown, Shown::Own);
        let (bar, failed) = match shown {
            Shown::Own => (own_bar(function, len), Arc::default()),
            Shown::Bar(CallersBar {
                bar,
                failed,
                lengthen,
            }) => {
                if let (true, Some(len)) = (lengthen, len) {
                    bar.set_length(bar.length().unwrap_or(0) + len);
                }
                (bar, failed)
            }
        };
        Progress { bar, failed, own }
    }

    /// Counts the items of a reply: those whose outcome is a value as done,
    /// the others as failed.
    pub(crate) fn count(&mut self, reply: &Reply) {
        let failed = match reply {
            Reply::Done {
                frame, outcomes, ..
            } => Batch::reopen(&frame.body()[*outcomes..])
                .iter()
                .filter(|outcome| !is_done(outcome))
                .count() as u64,
            Reply::Failed { count, .. } => u64::from(*count),
        };
        if failed > 0 {
            let total = self.failed.fetch_add(failed, Ordering::Relaxed) + failed;
            self.bar.set_message(format!("{total} failed"));
        }
        self.bar.inc(u64::from(reply.count()));
    }
}

impl Drop for Progress {
    /// Leaves forkmap's own bar on the screen where the call ended, its
    /// ticking stopped, without moving it to its end (as `finish` would)
    /// when the call ended early. A caller's bar is the caller's to finish.
    fn drop(&mut self) {
        if self.own {
            self.bar.abandon();
        }
    }
}

/// One of forkmap's own bars, on stderr (hidden when it is not a
/// terminal), ticking on its own so that a slow call still shows its time.
fn own_bar(function: &str, len: Option<u64>) -> ProgressBar {
    let template = match len {
        Some(_) => "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({rate}, ETA {eta}) {msg}",
        None => "{prefix} {spinner} [{elapsed_precise}] {pos} items ({rate}) {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("the template is valid")
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let rate = state.per_sec();
                let _ = match rate {
                    r if r >= 100.0 => write!(out, "{r:.0} items/s"),
                    r => write!(out, "{r:.1} items/s"),
                };
            },
        )
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()).with_style(style);
    bar.set_prefix(function.rsplit("::").next().unwrap_or(function).to_owned());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}
