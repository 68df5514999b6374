//! When a worker sends the results a chunk has so far: every few
//! milliseconds, and right after a slow item.

use std::time::{Duration, Instant};

/// How long a worker keeps results of a chunk before sending them, looked at
/// after items: a slow item's result goes out as soon as it is done, not at
/// its chunk's end, and quick items' results go out every few milliseconds.
/// (A quick item's result still waits for a slow item right after it.)
const SEND_AFTER: Duration = Duration::from_millis(2);

/// Says when [`SEND_AFTER`] has passed, looking at the clock only every so
/// many items, a number it adapts so that tiny items pay almost nothing.
pub(super) struct Pacer {
    /// Items between two looks at the clock, and until the next one.
    every: u32,
    left: u32,
    looked: Instant,
    sent: Instant,
}

impl Pacer {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Pacer {
            every: 1,
            left: 1,
            looked: now,
            sent: now,
        }
    }

    /// Starts a chunk afresh: look at the clock after its first item, and
    /// count from now, so that what earlier chunks taught of item speed does
    /// not hold back the first results of this one.
    pub(super) fn restart(&mut self) {
        *self = Pacer::new();
    }

    /// Called after each item: true when the results so far should go.
    pub(super) fn due(&mut self) -> bool {
        self.left -= 1;
        if self.left > 0 {
            return false;
        }
        let now = Instant::now();
        let between = now - self.looked;
        self.looked = now;
        if between < SEND_AFTER / 32 {
            self.every = (self.every * 2).min(1 << 16);
        } else if between > SEND_AFTER / 2 {
            self.every = (self.every / 2).max(1);
        }
        self.left = self.every;
        if now - self.sent >= SEND_AFTER {
            self.sent = now;
            true
        } else {
            false
        }
    }
}
