//! Forked worker processes, each behind a socket pair, posting on a board in
//! shared memory; a process's end is seen on its pidfd.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::channel::{watch, Channel, Doorbell, Watched};
use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::Doing;
use crate::platform::{self, Child, SharedBoard};

/// Worker processes, forked by the fork server (or, where none can be
/// started, by the dispatcher's thread: see `platform::spawn_worker`).
pub(crate) struct ProcessBackend {
    doorbell: Doorbell,
    slots: Vec<Option<Process>>,
    /// Read each worker's memory when it starts, for
    /// [`memory_growth`](Backend::memory_growth).
    watch_memory: bool,
}

struct Process {
    child: Child,
    channel: Channel,
    board: SharedBoard,
    /// Its resident memory when it started, in bytes (when watched).
    resident_at_start: u64,
}

impl ProcessBackend {
    pub(crate) fn new(watch_memory: bool) -> io::Result<Self> {
        Ok(ProcessBackend {
            doorbell: Doorbell::new()?,
            slots: Vec::new(),
            watch_memory,
        })
    }

    fn process(&self, worker: usize) -> Option<&Process> {
        self.slots.get(worker)?.as_ref()
    }
}

impl Backend for ProcessBackend {
    fn start(&mut self, worker: usize) -> io::Result<()> {
        let spawned = platform::spawn_worker()?;
        // Read only where a limit needs it: it costs a file read per worker.
        let resident_at_start = match self.watch_memory {
            true => spawned.child.resident().unwrap_or(0),
            false => 0,
        };
        if self.slots.len() <= worker {
            self.slots.resize_with(worker + 1, || None);
        }
        self.slots[worker] = Some(Process {
            child: spawned.child,
            channel: Channel::new(spawned.channel),
            board: spawned.board,
            resident_at_start,
        });
        Ok(())
    }

    fn send(&mut self, worker: usize, frame: Arc<Vec<u8>>) {
        if let Some(Some(process)) = self.slots.get_mut(worker) {
            process.channel.send(frame);
        }
    }

    fn wait(&mut self, deadline: Option<Instant>, events: &mut Vec<Event>) {
        let mut live: Vec<Watched<'_>> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, slot)| {
                let Process { child, channel, .. } = slot.as_mut()?;
                (!channel.is_reported()).then(|| (i, channel, child.exit_fd()))
            })
            .collect();
        watch(&self.doorbell, &mut live, deadline, events);
    }

    fn doing(&self, worker: usize) -> Doing {
        self.process(worker)
            .map_or(Doing::Idle, |process| process.board.doing())
    }

    fn ask_to_stop(&mut self, worker: usize, call: u64) {
        if let Some(Some(slot)) = self.slots.get(worker) {
            slot.board.ask_to_stop(call);
        }
    }

    fn can_kill(&self) -> bool {
        true
    }

    fn kill(&mut self, worker: usize) {
        if let Some(process) = self.process(worker) {
            process.child.kill();
        }
    }

    fn memory_growth(&self, worker: usize) -> Option<u64> {
        let process = self.process(worker)?;
        let resident = process.child.resident()?;
        Some(resident.saturating_sub(process.resident_at_start))
    }

    fn end(&mut self, worker: usize, kill: bool) -> Ending {
        let Some(process) = self.slots.get_mut(worker).and_then(Option::take) else {
            return Ending::unknown();
        };
        let (doing, last) = process.board.read();
        let Process { child, channel, .. } = process;
        // Closing the channel first lets an idle worker see end-of-file
        // and exit by itself.
        drop(channel);
        Ending {
            death: child.reap(kill),
            doing,
            last,
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.doorbell.waker()
    }
}
