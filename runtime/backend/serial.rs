//! One worker that runs in the caller's thread: the frames a worker
//! process would get are handled at once, as they are sent, by the same
//! code a worker process runs.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::{Board, Doing, Posted};
use crate::platform::Death;
use crate::protocol::frame::Received;
use crate::worker::Session;

/// A worker in the caller's thread, driven by a dispatcher that the caller
/// drives too (`dispatch::Route::Inline`). It has one slot.
pub(crate) struct SerialBackend {
    worker: Option<Here>,
    /// Reply frames not yet reported by `wait`.
    replies: VecDeque<Vec<u8>>,
    /// The worker stopped, as a worker process exits with code 2, on a
    /// frame whose header does not decode.
    stopped: bool,
    /// Its stop is yet to be reported.
    unreported: bool,
}

struct Here {
    session: Session,
    board: Board,
}

impl SerialBackend {
    pub(crate) fn new() -> Self {
        SerialBackend {
            worker: None,
            replies: VecDeque::new(),
            stopped: false,
            unreported: false,
        }
    }
}

/// Nothing to wake: `wait` never blocks.
struct Awake;

impl Wake for Awake {
    fn wake(&self) {}
}

impl Backend for SerialBackend {
    fn start(&mut self, _worker: usize) -> io::Result<()> {
        self.worker = Some(Here {
            // One reply per chunk: nobody reads results before it ends.
            session: Session::new(false),
            board: Board::default(),
        });
        self.stopped = false;
        self.unreported = false;
        Ok(())
    }

    fn send(&mut self, _worker: usize, frame: Arc<Vec<u8>>) {
        let Some(here) = &mut self.worker else {
            return;
        };
        if self.stopped {
            return;
        }
        let replies = &mut self.replies;
        let handled = here
            .session
            .handle(&frame[4..], &here.board, &mut |reply: &[u8]| {
                replies.push_back(reply.to_vec());
                Ok(())
            });
        if handled.is_err() {
            self.stopped = true;
            self.unreported = true;
        }
    }

    fn wait(&mut self, _deadline: Option<Instant>, events: &mut Vec<Event>) {
        if self.worker.is_none() {
            return;
        }
        events.extend(self.replies.drain(..).map(|frame| Event::Frame {
            worker: 0,
            frame: Received::whole(frame),
        }));
        if self.unreported {
            self.unreported = false;
            events.push(Event::Ended { worker: 0 });
        }
    }

    fn doing(&self, _worker: usize) -> Doing {
        self.worker
            .as_ref()
            .map_or(Doing::Idle, |here| here.board.doing())
    }

    fn ask_to_stop(&mut self, _worker: usize, call: u64) {
        if let Some(here) = &self.worker {
            here.board.ask_to_stop(call);
        }
    }

    fn can_kill(&self) -> bool {
        false
    }

    fn kill(&mut self, _worker: usize) {}

    fn memory_growth(&self, _worker: usize) -> Option<u64> {
        None
    }

    fn end(&mut self, _worker: usize, _kill: bool) -> Ending {
        let posted = self
            .worker
            .take()
            .map_or(Posted::NOTHING, |here| here.board.read());
        self.replies.clear();
        // What `worker::run` returns: 0 at the end of its input, 2 on a
        // frame that does not check out.
        Ending::new(Death::Exit(if self.stopped { 2 } else { 0 }), posted)
    }

    fn waker(&self) -> Arc<dyn Wake> {
        Arc::new(Awake)
    }
}
