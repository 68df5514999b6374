//! Worker threads of this process, each behind a link of rings, so that
//! tasks, items and results travel exactly as they do to a process.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::backend::channel::{watch, Channel, Doorbell, Spin, Watched};
use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::{Board, Doing};
use crate::platform::{self, Death, SharedBoard};
use crate::worker;

/// Worker threads. A thread cannot be killed: a busy one that is ended is
/// left to finish its task, and forgotten.
pub(crate) struct ThreadBackend {
    doorbell: Doorbell,
    spin: Spin,
    /// The size of each of a worker's rings.
    ring_size: usize,
    slots: Vec<Option<Worker>>,
}

struct Worker {
    thread: JoinHandle<i32>,
    channel: Channel,
    board: Arc<SharedBoard>,
}

impl ThreadBackend {
    pub(crate) fn new(ring_size: usize) -> io::Result<Self> {
        Ok(ThreadBackend {
            doorbell: Doorbell::new()?,
            spin: Spin::default(),
            ring_size,
            slots: Vec::new(),
        })
    }
}

impl Backend for ThreadBackend {
    fn start(&mut self, worker: usize) -> io::Result<()> {
        let board = Arc::new(SharedBoard::new()?);
        let (ours, theirs) = platform::thread_link(self.ring_size)?;
        let theirs_board = Arc::clone(&board);
        let thread = thread::Builder::new()
            .name("forkmap-worker".into())
            .spawn(move || {
                let mut theirs = theirs;
                worker::run(theirs.ends(), &theirs_board)
            })?;
        if self.slots.len() <= worker {
            self.slots.resize_with(worker + 1, || None);
        }
        self.slots[worker] = Some(Worker {
            thread,
            channel: Channel::new(ours),
            board,
        });
        Ok(())
    }

    fn send(&mut self, worker: usize, frame: Arc<Vec<u8>>) {
        if let Some(Some(thread)) = self.slots.get_mut(worker) {
            thread.channel.send(frame);
        }
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) {
        let mut live: Vec<Watched<'_>> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, slot)| {
                let Worker { channel, board, .. } = slot.as_mut()?;
                let board: &Board = board;
                (!channel.is_reported()).then_some((i, channel, None, board))
            })
            .collect();
        watch(&self.doorbell, &mut self.spin, &mut live, deadline, events);
    }

    fn doing(&self, worker: usize) -> Doing {
        match self.slots.get(worker) {
            Some(Some(thread)) => thread.board.doing(),
            _ => Doing::Idle,
        }
    }

    fn ask_to_stop(&mut self, worker: usize, call: u64) {
        if let Some(Some(thread)) = self.slots.get(worker) {
            thread.board.ask_to_stop(call);
        }
    }

    fn can_kill(&self) -> bool {
        false
    }

    fn kill(&mut self, _worker: usize) {}

    fn memory_growth(&self, _worker: usize) -> Option<u64> {
        None
    }

    fn end(&mut self, worker: usize, kill: bool) -> Ending {
        let Some(Worker {
            thread,
            channel,
            board,
            ..
        }) = self.slots.get_mut(worker).and_then(Option::take)
        else {
            return Ending::unknown();
        };
        // The thread sees the link's end and returns, once its task is done.
        drop(channel);
        let death = match kill {
            false => thread.join().map_or(Death::Unknown, Death::Exit),
            true => Death::Unknown,
        };
        Ending::new(death, board.read())
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.doorbell.waker()
    }
}
