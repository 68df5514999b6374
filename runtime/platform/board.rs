//! The board: where a worker posts what it is doing, in memory it shares with
//! the dispatcher, so that a worker that dies or hangs can be charged with the
//! exact item it was running.
//!
//! A worker that crashes cannot say anything more, and one that hangs says
//! nothing at all; the board is read instead. The worker posts every item
//! before it runs it (a few stores, no system call), and posts itself idle
//! when a chunk ends and whenever it sends results; the dispatcher reads the
//! board when the worker has died, and while it runs an item of a call with a
//! timeout or a memory limit. An item is posted before its arguments decode,
//! so a crash or a hang while they decode is charged to it; between two
//! items the board shows the first for the few instructions it takes to
//! write its outcome and take the next item's bytes.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// What a worker is doing, as posted on its board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Doing {
    /// Not running an item: reading, replying, or waiting.
    #[default]
    Idle,
    /// Running a factory body to build a call's closure, or the pool's
    /// initializer ([`INITIALIZER`]); since `started`
    /// ([`monotonic_ns`](crate::platform::monotonic_ns)), or 0 when the call
    /// has no timeout.
    SettingUp { call: u64, started: u64 },
    /// Running one item.
    Running(Item),
}

/// The item a worker is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) call: u64,
    /// The item's index in the call's input.
    pub(crate) index: u64,
    /// When it started ([`monotonic_ns`](crate::platform::monotonic_ns)), or
    /// 0 when its call has no timeout.
    pub(crate) started: u64,
}

/// The call number [`Doing::SettingUp`] posts while the pool's initializer runs.
pub(crate) const INITIALIZER: u64 = u64::MAX;

const IDLE: u64 = 0;
const SETTING_UP: u64 = 1;
const RUNNING: u64 = 2;

/// The shared words. All zero is a valid board: idle, nothing seen.
///
/// One thread writes it, the worker; others only read. The writer makes
/// `seq` odd while it changes the other words, so a reader that sees the
/// same even `seq` before and after its reads has a consistent snapshot.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Board {
    seq: AtomicU64,
    doing: AtomicU64,
    /// The last item posted running, which stays when the worker moves on:
    /// its call plus one (0: none yet), its index and its start.
    call: AtomicU64,
    index: AtomicU64,
    started: AtomicU64,
    /// The call being set up, and since when.
    setup_call: AtomicU64,
    setup_started: AtomicU64,
    /// The call whose items the worker is asked to stop, plus one (0: none).
    /// Written by the dispatcher, read by the worker between items.
    stop: AtomicU64,
    /// 1 while the dispatcher sleeps: the worker rings its bell after it
    /// sends a reply. Written by the dispatcher.
    dispatcher_sleeps: AtomicU64,
}

/// What a board says, as the pool reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Posted {
    /// What the worker is doing.
    pub(crate) doing: Doing,
    /// The last item it started, which it may have finished.
    pub(crate) last: Option<Item>,
    /// The board was left mid-post: what the worker did is not known (it
    /// reads as idle, with no item started).
    pub(crate) torn: bool,
}

impl Posted {
    /// A board that says nothing: a worker that has not posted yet.
    pub(crate) const NOTHING: Posted = Posted {
        doing: Doing::Idle,
        last: None,
        torn: false,
    };

    const TORN: Posted = Posted {
        torn: true,
        ..Posted::NOTHING
    };
}

impl Board {
    /// Posts what the worker is doing. Only the worker calls this.
    pub(crate) fn post(&self, doing: Doing) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let (kind, item) = match doing {
            Doing::Idle => (IDLE, None),
            Doing::SettingUp { call, started } => {
                self.setup_call.store(call, Ordering::Relaxed);
                self.setup_started.store(started, Ordering::Relaxed);
                (SETTING_UP, None)
            }
            Doing::Running(item) => (RUNNING, Some(item)),
        };
        if let Some(item) = item {
            self.call
                .store(item.call.wrapping_add(1), Ordering::Relaxed);
            self.index.store(item.index, Ordering::Relaxed);
            self.started.store(item.started, Ordering::Relaxed);
        }
        self.doing.store(kind, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Asks the worker to stop running the items of `call`: it looks between
    /// items. Only the dispatcher calls this.
    pub(crate) fn ask_to_stop(&self, call: u64) {
        self.stop.store(call.wrapping_add(1), Ordering::Release);
    }

    /// Whether the worker is asked to stop running the items of `call`.
    #[inline]
    pub(crate) fn asked_to_stop(&self, call: u64) -> bool {
        self.stop.load(Ordering::Relaxed) == call.wrapping_add(1)
    }

    /// Says whether the dispatcher is about to sleep (and wants the bell
    /// rung after a reply) or is awake. Only the dispatcher calls this; it
    /// looks at the worker's replies once more after saying it sleeps.
    pub(crate) fn set_dispatcher_sleeps(&self, sleeps: bool) {
        self.dispatcher_sleeps
            .store(u64::from(sleeps), Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Whether the dispatcher sleeps, after the worker has sent a reply:
    /// then it rings the bell.
    #[inline]
    pub(crate) fn dispatcher_sleeps(&self) -> bool {
        fence(Ordering::SeqCst);
        self.dispatcher_sleeps.load(Ordering::Relaxed) != 0
    }

    /// Reads what the worker is doing, and the last item it started (which
    /// it may have finished since). A board left mid-post (a worker killed
    /// while it posted, or a task that wrote over its board) reads as torn.
    pub(crate) fn read(&self) -> Posted {
        for _ in 0..1000 {
            let before = self.seq.load(Ordering::Acquire);
            let kind = self.doing.load(Ordering::Relaxed);
            let call = self.call.load(Ordering::Relaxed);
            let item = Item {
                call: call.wrapping_sub(1),
                index: self.index.load(Ordering::Relaxed),
                started: self.started.load(Ordering::Relaxed),
            };
            let setup_call = self.setup_call.load(Ordering::Relaxed);
            let setup_started = self.setup_started.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if before % 2 == 1 || self.seq.load(Ordering::Relaxed) != before {
                std::hint::spin_loop();
                continue;
            }
            let last = (call != 0).then_some(item);
            let doing = match kind {
                SETTING_UP => Doing::SettingUp {
                    call: setup_call,
                    started: setup_started,
                },
                RUNNING if call != 0 => Doing::Running(item),
                _ => Doing::Idle,
            };
            return Posted {
                doing,
                last,
                torn: false,
            };
        }
        Posted::TORN
    }

    /// What the worker is doing.
    pub(crate) fn doing(&self) -> Doing {
        self.read().doing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_left_mid_post_reads_torn() {
        let board = Board::default();
        board.post(Doing::Idle);
        assert!(!board.read().torn);
        // A worker killed between the two halves of a post, or a task that
        // wrote over its board.
        board.seq.fetch_add(1, Ordering::Relaxed);
        assert_eq!(board.read(), Posted::TORN);
        assert_eq!(board.doing(), Doing::Idle);
    }

    #[test]
    fn a_board_reads_back_what_was_posted() {
        let board = Board::default();
        assert_eq!(board.read(), Posted::NOTHING);
        board.post(Doing::SettingUp {
            call: 7,
            started: 99,
        });
        assert_eq!(
            board.doing(),
            Doing::SettingUp {
                call: 7,
                started: 99
            }
        );
        let item = Item {
            call: 7,
            index: 41,
            started: 12345,
        };
        board.post(Doing::Running(item));
        assert_eq!(
            (board.read().doing, board.read().last),
            (Doing::Running(item), Some(item))
        );
        board.post(Doing::Idle);
        // The last item started stays, for a death between items.
        assert_eq!(
            (board.read().doing, board.read().last),
            (Doing::Idle, Some(item))
        );
    }

    #[test]
    fn a_reader_never_sees_half_a_post() {
        let board = Board::default();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..200_000u64 {
                    board.post(Doing::Running(Item {
                        call: i,
                        index: i,
                        started: i,
                    }));
                }
            });
            for _ in 0..200_000 {
                if let Doing::Running(item) = board.doing() {
                    let i = item.call;
                    assert_eq!((item.index, item.started), (i, i));
                }
            }
        });
    }
}
