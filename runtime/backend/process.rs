//! Forked worker processes, each behind a link of rings in shared memory,
//! posting on a board in shared memory; a process's end is seen on its
//! pidfd.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::channel::{watch, Channel, Doorbell, Spin, Watched};
use crate::backend::{Backend, Ending, Event, Wake};
use crate::platform::board::{Board, Doing};
use crate::platform::{self, Child, SharedBoard};

/// Worker processes, forked by the fork server (or, where none can be
/// started, by the dispatcher's thread: see `platform::spawn_worker`).
pub(crate) struct ProcessBackend {
    doorbell: Doorbell,
    spin: Spin,
    /// The size of each of a worker's rings.
    ring_size: usize,
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
    pub(crate) fn new(watch_memory: bool, ring_size: usize) -> io::Result<Self> {
        Ok(ProcessBackend {
            doorbell: Doorbell::new()?,
            spin: Spin::default(),
            ring_size,
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
        let spawned = platform::spawn_worker(self.ring_size)?;
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
            channel: Channel::new(spawned.link),
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
                let Process {
                    child,
                    channel,
                    board,
                    ..
                } = slot.as_mut()?;
                let board: &Board = board;
                (!channel.is_reported()).then(|| (i, channel, child.exit_fd(), board))
            })
            .collect();
        watch(&self.doorbell, &mut self.spin, &mut live, deadline, events);
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
        let Process {
            child,
            channel,
            board,
            ..
        } = process;
        // Closing the link first lets an idle worker see its end and exit by
        // itself.
        drop(channel);
        let reaped = child.reap(kill);
        // Read once the worker is gone: until then it may move on to
        // another item than the one its board says.
        Ending {
            lingered: reaped.lingered,
            ..Ending::new(reaped.death, board.read())
        }
    }

    fn waker(&self) -> Arc<dyn Wake> {
        self.doorbell.waker()
    }
}
