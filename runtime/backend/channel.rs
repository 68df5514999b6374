//! A worker's socket as the thread and process backends keep it: frames
//! waiting to be written, frames being reassembled, and the doorbell socket
//! that wakes a backend's `wait`.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Event, Wake};
use crate::platform::{self, Private, Ready};
use crate::protocol::frame::{Fill, Inbox};

/// A frame on its way to a worker.
struct Outgoing {
    bytes: Arc<Vec<u8>>,
    written: usize,
}

/// The parent's end of a worker's socket.
pub(super) struct Channel {
    socket: Private,
    inbox: Inbox,
    outbox: VecDeque<Outgoing>,
    /// Nothing more will come: the peer closed, or sent bytes that are not
    /// frames.
    finished: bool,
    /// The worker has ended (its exit descriptor said so); its end is
    /// reported once the channel holds nothing more.
    exited: bool,
    /// Its end has been reported.
    reported: bool,
}

/// What [`Channel::receive`] found.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    /// Bytes were read and more may be waiting.
    More,
    /// Everything sent so far has been read; the channel is still open.
    Drained,
    /// The peer closed the channel; every frame before has been reported.
    Closed,
    /// The peer sent bytes that are not a frame; its [`Event::Garbled`] has
    /// been reported.
    Garbled,
}

impl Channel {
    pub(super) fn new(socket: Private) -> Self {
        Channel {
            socket,
            inbox: Inbox::new(),
            outbox: VecDeque::new(),
            finished: false,
            exited: false,
            reported: false,
        }
    }

    /// Whether the worker's end has been reported: it is not watched any
    /// more.
    pub(super) fn is_reported(&self) -> bool {
        self.reported
    }

    /// Queues a frame and writes what the socket takes now.
    pub(super) fn send(&mut self, frame: Arc<Vec<u8>>) {
        if self.finished {
            return;
        }
        self.outbox.push_back(Outgoing {
            bytes: frame,
            written: 0,
        });
        self.flush();
    }

    /// Writes what the socket takes without blocking. A write that fails
    /// means the worker is gone: what is queued is dropped, and its end is
    /// reported by the backend.
    pub(super) fn flush(&mut self) {
        let mut stream = self.socket.stream();
        while let Some(front) = self.outbox.front_mut() {
            match stream.write(&front.bytes[front.written..]) {
                Ok(n) => {
                    front.written += n;
                    if front.written == front.bytes.len() {
                        self.outbox.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// Acts on what `poll` found: writes, reads, and reports the worker's
    /// end after its last frame once the channel closed, or once the worker
    /// `exited` and the channel holds nothing more.
    fn progress(&mut self, worker: usize, ready: Ready, exited: bool, events: &mut Vec<Event>) {
        if ready.writable {
            self.flush();
        }
        self.exited |= exited;
        if !(ready.readable || self.exited) {
            return;
        }
        let ended = match self.receive(worker, events) {
            Reading::Garbled => {
                self.reported = true;
                return;
            }
            Reading::Closed => true,
            Reading::Drained => self.exited,
            Reading::More => false,
        };
        if ended {
            self.reported = true;
            events.push(Event::Ended { worker });
        }
    }

    /// Reads what has arrived without blocking, and reports each whole
    /// frame as an event of worker `worker`.
    fn receive(&mut self, worker: usize, events: &mut Vec<Event>) -> Reading {
        if self.finished {
            return Reading::Closed;
        }
        // Bounded, so that one busy worker cannot starve the others.
        for _ in 0..16 {
            let mut stream = self.socket.stream();
            match self.inbox.fill(&mut stream) {
                Ok(Fill::Data) => loop {
                    match self.inbox.next_frame() {
                        Ok(Some(frame)) => events.push(Event::Frame { worker, frame }),
                        Ok(None) => break,
                        Err(e) => {
                            self.finished = true;
                            events.push(Event::Garbled {
                                worker,
                                reason: e.to_string(),
                            });
                            return Reading::Garbled;
                        }
                    }
                },
                Ok(Fill::Empty) => return Reading::Drained,
                Ok(Fill::Closed) | Err(_) => {
                    self.finished = true;
                    return Reading::Closed;
                }
            }
        }
        Reading::More
    }
}

/// A live worker as [`watch`] polls it: its number, its channel, and the
/// descriptor that polls readable once it has ended, where there is one (a
/// process's pidfd; a thread ends by closing its channel).
pub(super) type Watched<'a> = (usize, &'a mut Channel, Option<BorrowedFd<'a>>);

/// Waits until the doorbell rings, a channel can be read or written, a
/// worker ends, or `deadline` passes; then writes and reads each channel
/// that is ready, and reports each worker's end after its last frame.
pub(super) fn watch(
    doorbell: &Doorbell,
    live: &mut [Watched<'_>],
    deadline: Option<Instant>,
    events: &mut Vec<Event>,
) {
    let ready = {
        let mut fds = vec![(doorbell.fd(), false)];
        for (_, channel, exit) in live.iter() {
            fds.push((channel.socket.stream().as_fd(), !channel.outbox.is_empty()));
            fds.extend(exit.map(|exit| (exit, false)));
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match platform::poll(&fds, timeout) {
            Ok(ready) => ready,
            // Only an invalid argument makes poll fail; look again next time.
            Err(_) => return,
        }
    };
    if ready[0].readable {
        doorbell.clear();
    }
    let mut next = ready[1..].iter();
    for (worker, channel, exit) in live.iter_mut() {
        let on_channel = next.next().copied().unwrap_or_default();
        let exited = exit.is_some() && next.next().is_some_and(|r| r.readable);
        channel.progress(*worker, on_channel, exited, events);
    }
}

/// A socket pair whose one end wakes a backend's `wait` and whose other
/// end is polled there.
pub(super) struct Doorbell {
    ring: Arc<RingEnd>,
    heard: Private,
}

struct RingEnd(Private);

impl Wake for RingEnd {
    fn wake(&self) {
        // A full socket already holds a wake-up; nothing is lost.
        let _ = self.0.stream().write(&[1]);
    }
}

impl Doorbell {
    pub(super) fn new() -> std::io::Result<Self> {
        let (ring, heard) = platform::private_pair()?;
        Ok(Doorbell {
            ring: Arc::new(RingEnd(ring)),
            heard,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.heard.stream().as_fd()
    }

    /// Empties the socket after it was found readable.
    fn clear(&self) {
        let mut sink = [0; 64];
        while matches!(self.heard.stream().read(&mut sink), Ok(n) if n > 0) {}
    }

    pub(super) fn waker(&self) -> Arc<dyn Wake> {
        Arc::clone(&self.ring) as Arc<dyn Wake>
    }
}
