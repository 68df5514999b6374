//! Worker threads of this process, each behind a socket pair, so that
//! tasks, items and results travel exactly as they do to a process.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::backend::channel::{Channel, Doorbell, Reading};
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
    /// Its end has been reported.
    reported: bool,
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
            reported: false,
        });
        Ok(())
    }

    fn send(&mut self, worker: usize, frame: Arc<Vec<u8>>) {
        if let Some(Some(thread)) = self.slots.get_mut(worker) {
            thread.channel.send(frame);
        }
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].as_ref().is_some_and(|w| !w.reported))
            .collect();
        let ready = {
            let mut watched = vec![(self.doorbell.fd(), false)];
            for &i in &live {
                let channel = &self.slots[i].as_ref().expect("a live slot").channel;
                watched.push((channel.fd(), channel.wants_to_write()));
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match platform::poll(&watched, timeout) {
                Ok(ready) => ready,
                Err(_) => return,
            }
        };
        if ready[0].readable {
            self.doorbell.clear();
        }
        for (&i, ready) in live.iter().zip(&ready[1..]) {
            let worker = self.slots[i].as_mut().expect("a live slot");
            if ready.writable {
                worker.channel.flush();
            }
            if ready.readable {
                match worker.channel.receive(i, events) {
                    Reading::Closed => {
                        worker.reported = true;
                        events.push(Event::Ended { worker: i });
                    }
                    Reading::Garbled => worker.reported = true,
                    Reading::More | Reading::Drained => {}
                }
            }
        }
    }

    fn doing(&self, worker: usize) -> Doing {
        match self.slots.get(worker) {
            Some(Some(thread)) => thread.board.read(),
            _ => Doing::Idle,
        }
    }

    fn kill(&mut self, _worker: usize) -> bool {
        false
    }

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
            return Ending {
                death: Death::Unknown,
                doing: Doing::Idle,
            };
        };
        let doing = board.read();
        // The thread sees end-of-file and returns, once its task is done.
        drop(channel);
        let death = match kill {
            false => thread.join().map_or(Death::Unknown, Death::Exit),
            true => Death::Unknown,
        };
        Ending { death, doing }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.doorbell.waker()
    }
}
