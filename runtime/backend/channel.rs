//! A worker's link as the thread and process backends keep it, and how the
//! dispatcher waits on all of them at once.
//!
//! Frames go through the link's rings: a frame's body is one ring message.
//! A frame too large for a ring goes through the socket, and an empty ring
//! message takes its place in the ring, so that the order holds. The
//! dispatcher reads what workers reply without a system call; when nothing
//! comes, it spins a moment (less after moments that brought nothing), then
//! says on each worker's board that it sleeps, looks once more, and sleeps
//! in `poll` on the doorbell, the workers' bells, sockets and pidfds. A
//! worker rings its bell after a reply only while the dispatcher sleeps.

use std::collections::VecDeque;
use std::hint;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Event, Wake};
use crate::platform::board::Board;
use crate::platform::link::PoolEnds;
use crate::platform::ring::RingError;
use crate::platform::{self, Private, Ready};
use crate::protocol::frame::{Fill, Inbox, Received};

/// The longest the dispatcher spins for a reply before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// How many times a spin that brought nothing halves the next one.
const MAX_SPIN_SHIFT: u32 = 6;

/// While a frame waits for room in a worker's ring, or a worker cannot ring
/// its bell, the dispatcher looks at the links again this often (a full
/// ring has no descriptor to poll; a worker whose bell is gone replies
/// unheard).
const UNHEARD_RETRY: Duration = Duration::from_millis(1);

/// How long a worker's bell must have been closed, while the worker lives
/// on, before the worker is reported unable to wake the dispatcher.
const DEAF_AFTER: Duration = Duration::from_millis(10);

/// The longest the dispatcher sleeps without looking at every link, whatever
/// it waits for: a worker whose bell stopped working in a way its pool
/// cannot see (a task closed it while a process it forked holds a copy) is
/// slow, never stuck.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// A frame on its way through the socket.
struct Outgoing {
    bytes: Arc<Vec<u8>>,
    written: usize,
}

/// The pool's end of a worker's link.
pub(super) struct Channel {
    link: PoolEnds,
    /// Frames waiting for room in the ring, in order; `None` stands for
    /// the empty message of a frame that goes through the socket.
    waiting: VecDeque<Option<Arc<Vec<u8>>>>,
    /// Frames too large for the ring, being written to the socket.
    bulk_out: VecDeque<Outgoing>,
    /// Bytes read from the socket.
    bulk_in: Inbox,
    /// The ring said the next frame comes through the socket.
    awaiting_bulk: bool,
    /// Nothing more will come: the peer closed, or broke the protocol.
    finished: bool,
    /// The worker has ended (its exit descriptor said so); its end is
    /// reported once the link holds nothing more.
    exited: bool,
    /// Its end has been reported.
    reported: bool,
    /// Its bell's worker end has closed, since then: it cannot wake the
    /// dispatcher.
    deaf: Option<Instant>,
    /// That has been reported ([`Event::Deaf`]).
    deaf_reported: bool,
}

/// What [`Channel::receive`] found.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    /// Frames were read and more may be waiting.
    More,
    /// Everything sent so far has been read; the link is still open.
    Drained,
    /// The peer closed the link; every frame before has been reported.
    Closed,
    /// The peer broke the protocol; its [`Event::Garbled`] has been
    /// reported.
    Garbled,
}

impl Channel {
    pub(super) fn new(link: PoolEnds) -> Self {
        Channel {
            link,
            waiting: VecDeque::new(),
            bulk_out: VecDeque::new(),
            bulk_in: Inbox::new(),
            awaiting_bulk: false,
            finished: false,
            exited: false,
            reported: false,
            deaf: None,
            deaf_reported: false,
        }
    }

    /// Silences the worker's bell, which `poll` found rung, and notes when
    /// its end has closed (its task closed it, or put another file in its
    /// place; or the worker is ending).
    fn hear(&mut self) {
        if !self.link.bell.get().silence() {
            self.deaf = Some(Instant::now());
        }
    }

    fn is_deaf(&self) -> bool {
        self.deaf.is_some()
    }

    /// Reports that the worker can no longer wake the dispatcher, once its
    /// bell has been closed for [`DEAF_AFTER`] while the worker lives on:
    /// a worker that is ending closes its bell too, and its end is seen
    /// within that time.
    fn report_deaf(&mut self, worker: usize, events: &mut Vec<Event>) {
        let closed_long = self.deaf.is_some_and(|since| since.elapsed() >= DEAF_AFTER);
        if closed_long && !self.deaf_reported && !self.reported {
            self.deaf_reported = true;
            events.push(Event::Deaf { worker });
        }
    }

    /// Whether the worker's end has been reported: it is not watched any
    /// more.
    pub(super) fn is_reported(&self) -> bool {
        self.reported
    }

    /// Queues a frame (length prefix and body) and writes what the link
    /// takes now.
    pub(super) fn send(&mut self, frame: Arc<Vec<u8>>) {
        if self.finished {
            return;
        }
        let body = frame.len().saturating_sub(4);
        if body > 0 && body <= self.link.down.max_message() {
            self.waiting.push_back(Some(frame));
        } else {
            self.waiting.push_back(None);
            self.bulk_out.push_back(Outgoing {
                bytes: frame,
                written: 0,
            });
        }
        // The frame may not be the first waiting: the order holds.
        let _ = self.flush();
    }

    /// Writes what the ring and the socket take without blocking. A socket
    /// that fails means the worker is gone: what is queued is dropped, and
    /// its end is reported by the backend. A ring whose shared counters the
    /// worker scribbled over is an error, for which the worker is ended.
    fn flush(&mut self) -> Result<(), RingError> {
        while let Some(front) = self.waiting.front() {
            let body = front.as_deref().map_or(&[][..], |frame| &frame[4..]);
            if !self.link.down.try_write(body)? {
                break;
            }
            self.waiting.pop_front();
        }
        let mut stream = self.link.socket.stream();
        while let Some(front) = self.bulk_out.front_mut() {
            match stream.write(&front.bytes[front.written..]) {
                Ok(n) => {
                    front.written += n;
                    if front.written == front.bytes.len() {
                        self.bulk_out.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.bulk_out.clear();
                    break;
                }
            }
        }
        Ok(())
    }

    /// Writes and reads what the link takes now, and reports the worker's
    /// end after its last frame once the link closed, or once the worker
    /// `exited` and the link holds nothing more. `socket` is what `poll`
    /// found on the socket, when it looked.
    fn progress(&mut self, worker: usize, socket: Ready, exited: bool, events: &mut Vec<Event>) {
        if self.reported {
            return;
        }
        self.exited |= exited;
        let reading = match self.flush() {
            Ok(()) => self.receive(worker, socket.readable, events),
            Err(e) => self.garble(worker, format!("its ring from the pool: {e}"), events),
        };
        let ended = match reading {
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
        self.report_deaf(worker, events);
    }

    /// Reads what has arrived without blocking, and reports each whole
    /// frame as an event of worker `worker`. The socket is read while a
    /// frame is awaited from it, and when `poll` found it `readable` (its
    /// end, or bytes that no ring message announced, which break the
    /// protocol).
    fn receive(&mut self, worker: usize, readable: bool, events: &mut Vec<Event>) -> Reading {
        if self.finished {
            return Reading::Closed;
        }
        // Bounded, so that one busy worker cannot starve the others.
        for _ in 0..64 {
            if self.awaiting_bulk {
                match self.bulk_in.next_frame() {
                    Ok(Some(frame)) => {
                        self.awaiting_bulk = false;
                        events.push(Event::Frame { worker, frame });
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => return self.garble(worker, e.to_string(), events),
                }
                match self.fill() {
                    Fill::Data => continue,
                    Fill::Empty => return Reading::Drained,
                    Fill::Closed => return self.close(),
                }
            }
            // Copied out: what a worker wrote is not trusted to stay put
            // while it is decoded.
            let read = self.link.up.read().map(|message| {
                message.map(|message| match message.is_empty() {
                    true => None,
                    false => {
                        let mut body = Vec::new();
                        message.copy_into(&mut body);
                        Some(body)
                    }
                })
            });
            let message = match read {
                Ok(message) => message,
                Err(e) => return self.garble(worker, format!("its ring to the pool: {e}"), events),
            };
            match message {
                Some(None) => self.awaiting_bulk = true,
                Some(Some(body)) => {
                    let frame = Received::from_body(body);
                    events.push(Event::Frame { worker, frame });
                }
                None => {
                    // Every byte on the socket follows a ring message that
                    // announced it, and a worker commits that message before
                    // it writes the bytes: with the ring read to its end,
                    // bytes that no message claims break the protocol.
                    if !readable && self.bulk_in.is_empty() {
                        return Reading::Drained;
                    }
                    let fill = match self.bulk_in.is_empty() {
                        true => self.fill(),
                        false => Fill::Data,
                    };
                    if self.link.up.has_message() {
                        continue;
                    }
                    return match fill {
                        Fill::Empty => Reading::Drained,
                        Fill::Closed => self.close(),
                        Fill::Data => self.garble(
                            worker,
                            "bytes on its socket that no ring message announced".into(),
                            events,
                        ),
                    };
                }
            }
        }
        Reading::More
    }

    /// Reads once from the socket; an error is its end.
    fn fill(&mut self) -> Fill {
        let mut stream = self.link.socket.stream();
        self.bulk_in.fill(&mut stream).unwrap_or(Fill::Closed)
    }

    fn close(&mut self) -> Reading {
        self.finished = true;
        Reading::Closed
    }

    /// Reports that the worker broke the protocol: nothing more is read
    /// from it.
    fn garble(&mut self, worker: usize, reason: String, events: &mut Vec<Event>) -> Reading {
        self.finished = true;
        events.push(Event::Garbled { worker, reason });
        Reading::Garbled
    }
}

impl Drop for Channel {
    /// Tells an idle worker that the pool is done with it: the empty message
    /// sends it to the socket, where it finds the end. (A worker that finds
    /// the ring full at that moment sees the end within a second on its
    /// own.)
    fn drop(&mut self) {
        if self.waiting.is_empty() {
            let _ = self.link.down.try_write(&[]);
        }
    }
}

/// A live worker as [`watch`] polls it: its number, its link, the
/// descriptor that polls readable once it has ended, where there is one (a
/// process's pidfd; a thread ends by closing its socket), and its board.
pub(super) type Watched<'a> = (usize, &'a mut Channel, Option<BorrowedFd<'a>>, &'a Board);

/// How long the dispatcher spins before it sleeps, learned from how its
/// recent spins ended.
#[derive(Debug, Default)]
pub(super) struct Spin {
    shift: u32,
}

/// Waits until a worker replies, the doorbell rings, a socket can be read
/// or written, a worker ends, or `deadline` passes; then writes and reads
/// each link, and reports each worker's end after its last frame.
pub(super) fn watch(
    doorbell: &Doorbell,
    spin: &mut Spin,
    live: &mut [Watched<'_>],
    deadline: Option<Instant>,
    events: &mut Vec<Event>,
) {
    let quiet = Ready::default();
    for (worker, channel, _, _) in live.iter_mut() {
        channel.progress(*worker, quiet, false, events);
    }
    if !events.is_empty() || doorbell.take() {
        return;
    }
    let woken = |live: &[Watched<'_>]| {
        doorbell.is_rung()
            || live
                .iter()
                .any(|(_, channel, _, _)| channel.link.up.has_message())
    };
    if spin_until(spin, deadline, || woken(live)) || sleep(doorbell, live, deadline, events) {
        for (worker, channel, _, _) in live.iter_mut() {
            channel.progress(*worker, quiet, false, events);
        }
    }
    doorbell.take();
}

/// Spins until `woken` says so, for at most the spin `spin` allows, less
/// than `deadline`; `true` when woken.
fn spin_until(spin: &mut Spin, deadline: Option<Instant>, mut woken: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    let mut budget = SPIN / (1 << spin.shift);
    if let Some(deadline) = deadline {
        budget = budget.min(deadline.saturating_duration_since(started));
    }
    loop {
        for _ in 0..32 {
            if woken() {
                spin.shift = 0;
                return true;
            }
            hint::spin_loop();
        }
        if started.elapsed() >= budget {
            spin.shift = (spin.shift + 1).min(MAX_SPIN_SHIFT);
            return false;
        }
        // The core goes to whoever else is ready to run there (a caller
        // woken with its results, a worker).
        std::thread::yield_now();
    }
}

/// Says on every board that the dispatcher sleeps, looks once more, and
/// sleeps in `poll`; then acts on what it found. `true` when the links are
/// yet to be read.
fn sleep(
    doorbell: &Doorbell,
    live: &mut [Watched<'_>],
    deadline: Option<Instant>,
    events: &mut Vec<Event>,
) -> bool {
    for (_, _, _, board) in live.iter() {
        board.set_dispatcher_sleeps(true);
    }
    doorbell.set_sleeping(true);
    let awake = doorbell.is_rung() || live.iter().any(|(_, c, _, _)| c.link.up.has_message());
    let ready = if awake {
        None
    } else {
        let mut fds = vec![(doorbell.fd(), false)];
        let mut look_again = LOOK_AGAIN;
        for (_, channel, exit, _) in live.iter() {
            if !channel.is_deaf() {
                fds.push((channel.link.bell.get().fd(), false));
            }
            let socket = channel.link.socket.stream().as_fd();
            fds.push((socket, !channel.bulk_out.is_empty()));
            fds.extend(exit.map(|exit| (exit, false)));
            if !channel.waiting.is_empty() || channel.is_deaf() {
                look_again = UNHEARD_RETRY;
            }
        }
        let timeout = deadline.map_or(look_again, |d| {
            d.saturating_duration_since(Instant::now()).min(look_again)
        });
        // Only an invalid argument makes poll fail; look again next time.
        platform::poll(&fds, Some(timeout)).ok()
    };
    doorbell.set_sleeping(false);
    for (_, _, _, board) in live.iter() {
        board.set_dispatcher_sleeps(false);
    }
    let Some(ready) = ready else {
        return true;
    };
    if ready[0].readable {
        doorbell.clear();
    }
    let mut next = ready[1..].iter();
    for (worker, channel, exit, _) in live.iter_mut() {
        if !channel.is_deaf() && next.next().is_some_and(|bell| bell.readable) {
            channel.hear();
        }
        let socket = next.next().copied().unwrap_or_default();
        let exited = exit.is_some() && next.next().is_some_and(|r| r.readable);
        channel.progress(*worker, socket, exited, events);
    }
    false
}

/// What wakes a backend's `wait` from another thread: a flag it looks at
/// while it spins, and a socket pair whose one end it polls while it
/// sleeps, written only then.
pub(super) struct Doorbell {
    ring: Arc<RingEnd>,
    heard: Private,
}

struct RingEnd {
    socket: Private,
    /// Set by a wake, taken by the dispatcher.
    rung: AtomicBool,
    /// Set while the dispatcher sleeps, or is about to.
    sleeping: AtomicBool,
}

impl Wake for RingEnd {
    fn wake(&self) {
        self.rung.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            // A full socket already holds a wake-up; nothing is lost.
            let _ = self.socket.stream().write(&[1]);
        }
    }
}

impl Doorbell {
    pub(super) fn new() -> std::io::Result<Self> {
        let (ring, heard) = platform::private_pair()?;
        Ok(Doorbell {
            ring: Arc::new(RingEnd {
                socket: ring,
                rung: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
            }),
            heard,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.heard.stream().as_fd()
    }

    fn is_rung(&self) -> bool {
        self.ring.rung.load(Ordering::Relaxed)
    }

    /// Whether it was rung since it was last taken.
    fn take(&self) -> bool {
        self.is_rung() && self.ring.rung.swap(false, Ordering::Relaxed)
    }

    /// Says whether the dispatcher sleeps (a wake then writes the socket);
    /// after saying it does, it looks at the flag once more.
    fn set_sleeping(&self, sleeping: bool) {
        self.ring.sleeping.store(sleeping, Ordering::SeqCst);
        fence(Ordering::SeqCst);
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
