//! Worker threads of this process, each behind a socket pair, so that
//! tasks, items and results travel exactly as they do to a process.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::backend::channel::{watch, Channel, Doorbell, Watched};
use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::Doing;
use crate::platform::{self, Death, SharedBoard};
use crate::worker;

/// Worker threads. A thread cannot be killed: a busy one that is ended is
/// left to finish its task, and forgotten.
pub(crate) struct ThreadBackend {
    doorbell: Doorbell,
    slots: Vec<Option<Worker>>,
}

struct Worker {
    thread: JoinHandle<i32>,
    channel: Channel,
    board: Arc<SharedBoard>,
}

impl ThreadBackend {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(ThreadBackend {
            doorbell: Doorbell::new()?,
            slots: Vec::new(),
        })
    }
}

impl Backend for ThreadBackend {
    fn start(&mut self, worker: usize) -> io::Result<()> {
        let board = Arc::new(SharedBoard::new()?);
        let (ours, theirs) = platform::private_pair()?;
        theirs.stream().set_nonblocking(false)?;
        let theirs_board = Arc::clone(&board);
        let thread = thread::Builder::new()
            .name("forkmap-worker".into())
            .spawn(move || worker::run(theirs.stream(), &theirs_board))?;
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
                let channel = &mut slot.as_mut()?.channel;
                (!channel.is_reported()).then_some((i, channel, None))
            })
            .collect();
        watch(&self.doorbell, &mut live, deadline, events);
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
        let (doing, last) = board.read();
        // The thread sees end-of-file and returns, once its task is done.
        drop(channel);
        let death = match kill {
            false => thread.join().map_or(Death::Unknown, Death::Exit),
            true => Death::Unknown,
        };
        Ending { death, doing, last }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.doorbell.waker()
    }
}
