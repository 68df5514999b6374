//! The results of one call as they come back: received from the
//! dispatcher, put in input order, and decoded on demand.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::call::outcome::{at_index, Decoding, Tally};
use crate::call::Source;
use crate::dispatch::work::{Chunk, Reply, WakerSlot};
use crate::dispatch::Link;
use crate::error::Error;
use crate::protocol::message::Failure;

/// The results of one call as they come back, decoded on demand.
pub(crate) struct Results {
    /// The dispatcher thread, told when the results are dropped; `None`
    /// for an inline call, whose replies all came while its chunks were
    /// sent.
    link: Option<Arc<Link>>,
    id: u64,
    function: &'static str,
    replies: Receiver<Reply>,
    waker: Arc<WakerSlot>,
    /// Chunks sent to the dispatcher whose items have not all come back:
    /// first index, and how many items are still to come.
    open: BTreeMap<u64, u32>,
    /// Replies not yet handed out, by first index.
    arrived: BTreeMap<u64, Reply>,
    current: Option<Decoding>,
    /// The index of the next result to hand out in input order.
    next_index: u64,
    /// How many items the input said it held at least: room for the values.
    expected: usize,
    /// A caller waits for this call's one result: it looks for the reply
    /// in a loop for a moment before sleeping ([`Results::recv_soon`]).
    eager: bool,
    /// Every item has been sent, so dropping the results lets the call
    /// run to its end instead of cancelling it.
    sealed: bool,
    closed: bool,
    /// The call's progress bar, moved as replies come in.
    #[cfg(feature = "progress")]
    pub(super) progress: Option<crate::call::progress::Progress>,
}

/// How long a caller waiting for one result looks for it before sleeping.
const EAGER_WAIT: Duration = Duration::from_micros(200);

impl Results {
    /// The results of call `id` of `function`, coming on `replies` through
    /// `route`; the input holds at least `expected` items.
    pub(super) fn new(
        link: Option<Arc<Link>>,
        id: u64,
        function: &'static str,
        (replies, waker): (Receiver<Reply>, Arc<WakerSlot>),
        expected: usize,
    ) -> Self {
        Results {
            link,
            id,
            function,
            replies,
            waker,
            open: BTreeMap::new(),
            arrived: BTreeMap::new(),
            current: None,
            next_index: 0,
            expected,
            eager: false,
            sealed: false,
            closed: false,
            #[cfg(feature = "progress")]
            progress: None,
        }
    }

    /// Every item has been sent: dropping the results lets the call run to
    /// its end instead of cancelling it.
    pub(super) fn seal(&mut self) {
        self.sealed = true;
    }

    /// Cancels the call: items not yet started never run, and those in a
    /// worker stop between items (or with their worker).
    pub(crate) fn cancel(mut self) {
        self.sealed = false;
        self.close();
    }

    /// The next result in input order, topping the input up from `source`.
    pub(super) fn next_ordered<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<O, Error>> {
        loop {
            if let Some(decoding) = &mut self.current {
                if let Some((_, result)) = decoding.next::<O>(self.function) {
                    return Some(result);
                }
                self.current = None;
            }
            match self.next_reply_ordered(source.as_deref_mut())? {
                Ok(reply) => self.current = Some(Decoding::new(reply)),
                Err(closed) => return Some(Err(closed)),
            }
        }
    }

    /// The reply holding the next results in input order, topping the input
    /// up from `source`.
    fn next_reply_ordered(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<Reply, Error>> {
        loop {
            if let Some(source) = source.as_deref_mut() {
                source.top_up(self);
            }
            if let Some(reply) = self.arrived.remove(&self.next_index) {
                self.next_index += u64::from(reply.count());
                return Some(Ok(reply));
            }
            if let Err(closed) = self.receive(source.as_deref_mut())? {
                return Some(Err(closed));
            }
        }
    }

    /// The next result of any reply that has come, with its index.
    pub(super) fn next_unordered<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Option<Result<(usize, O), Error>> {
        loop {
            if let Some(decoding) = &mut self.current {
                if let Some((index, result)) = decoding.next::<O>(self.function) {
                    return Some(result.map(|value| (at_index(index), value)));
                }
                self.current = None;
            }
            if let Some(source) = source.as_deref_mut() {
                source.top_up(self);
            }
            if let Some((_, reply)) = self.arrived.pop_first() {
                self.current = Some(Decoding::new(reply));
                continue;
            }
            if let Err(closed) = self.receive(source.as_deref_mut())? {
                return Some(Err(closed));
            }
        }
    }

    /// Every result in input order, once all items have been sent: the
    /// values, or [`Error::Incomplete`].
    pub(crate) fn collect<O: DeserializeOwned>(mut self) -> Result<Vec<O>, Error> {
        self.collect_from(None)
    }

    /// Every result in input order, topping the input up from `source`.
    pub(super) fn collect_from<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Result<Vec<O>, Error> {
        let mut tally = Tally::with_capacity(self.expected);
        while let Some(reply) = self.next_reply_ordered(source.as_deref_mut()) {
            tally.add_reply(reply?, self.function)?;
        }
        tally.finish()
    }

    /// Every item's own result in input order, topping the input up from
    /// `source`; `Err` only when the call as a whole failed (the pool closed,
    /// no worker could start).
    pub(super) fn collect_each_from<O: DeserializeOwned>(
        &mut self,
        mut source: Option<&mut Source<'_>>,
    ) -> Result<Vec<Result<O, Error>>, Error> {
        let mut each = Vec::with_capacity(self.expected);
        while let Some(reply) = self.next_reply_ordered(source.as_deref_mut()) {
            let mut decoding = Decoding::new(reply?);
            while let Some((_, result)) = decoding.next::<O>(self.function) {
                match result {
                    Err(spawn @ Error::Spawn(_)) => return Err(spawn),
                    result => each.push(result),
                }
            }
        }
        Ok(each)
    }

    /// The one result of a call of one item.
    pub(crate) fn single<O: DeserializeOwned>(mut self) -> Result<O, Error> {
        self.eager = true;
        self.next_ordered(None).unwrap_or(Err(Error::Closed))
    }

    /// Waits for one reply. `None` when no reply is to come; `Err` when the
    /// dispatcher went away, which also ends the input.
    fn receive(&mut self, source: Option<&mut Source<'_>>) -> Option<Result<(), Error>> {
        if self.open.is_empty() {
            self.close();
            return None;
        }
        if let Some(Err(inherited)) = self.link.as_ref().map(|link| link.check_owner()) {
            self.open.clear();
            self.closed = true;
            if let Some(source) = source {
                source.stop();
            }
            return Some(Err(inherited));
        }
        let reply = match (&self.link, self.eager) {
            // Every reply of an inline call came while its chunks were sent:
            // one that is missing is not coming.
            (None, _) => self
                .replies
                .try_recv()
                .map_err(|_| TryRecvError::Disconnected),
            (Some(_), true) => self.recv_soon(),
            (Some(_), false) => self.replies.recv().map_err(|_| TryRecvError::Disconnected),
        };
        match reply {
            Ok(reply) => {
                self.take_in(reply);
                Some(Ok(()))
            }
            Err(_) => {
                // The dispatcher is gone: nothing more will come.
                if let Some(source) = source {
                    source.stop();
                }
                self.open.clear();
                self.arrived.clear();
                self.current = None;
                self.close();
                Some(Err(Error::Closed))
            }
        }
    }

    /// Waits for a reply, looking for it in a loop for a moment before going
    /// to sleep: waking a sleeping thread costs tens of microseconds on many
    /// machines, more than a quick task takes. On a machine of one CPU it
    /// sleeps at once, since the loop would hold up the worker it waits for.
    fn recv_soon(&self) -> Result<Reply, TryRecvError> {
        static SEVERAL_CPUS: OnceLock<bool> = OnceLock::new();
        if *SEVERAL_CPUS.get_or_init(|| thread::available_parallelism().is_ok_and(|n| n.get() > 1))
        {
            let until = Instant::now() + EAGER_WAIT;
            while Instant::now() < until {
                for _ in 0..32 {
                    match self.replies.try_recv() {
                        Err(TryRecvError::Empty) => std::hint::spin_loop(),
                        other => return other,
                    }
                }
                // The core goes to whoever else is ready to run there: on a
                // machine with one core free, the dispatcher or the worker
                // this caller waits for.
                thread::yield_now();
            }
        }
        self.replies.recv().map_err(|_| TryRecvError::Disconnected)
    }

    /// Takes in the replies that have come, without waiting; true once
    /// every reply is in.
    pub(crate) fn pump(&mut self) -> bool {
        if self
            .link
            .as_ref()
            .is_some_and(|link| link.check_owner().is_err())
        {
            // Decoding will say the pool is not this process's.
            return true;
        }
        while !self.open.is_empty() {
            match self.replies.try_recv() {
                Ok(reply) => self.take_in(reply),
                Err(TryRecvError::Empty) => return false,
                // Gone: decoding will say the pool closed.
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        true
    }

    /// Where replies to this call are announced: a future leaves its waker
    /// there, and a thread waiting for the call sleeps on it.
    pub(crate) fn waker(&self) -> &Arc<WakerSlot> {
        &self.waker
    }

    /// Expects the replies of a chunk sent to the dispatcher.
    pub(super) fn expect(&mut self, chunk: &Chunk) {
        self.open.insert(chunk.first, chunk.count);
    }

    /// How many chunks are out or in but not yet handed out.
    pub(super) fn in_flight(&self) -> usize {
        self.open.len() + self.arrived.len()
    }

    /// The call's number.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Takes in a reply from the dispatcher, and counts its items as come.
    fn take_in(&mut self, reply: Reply) {
        #[cfg(feature = "progress")]
        if let Some(progress) = &mut self.progress {
            progress.count(&reply);
        }
        let first = reply.first();
        if let Some((&chunk, left)) = self.open.range_mut(..=first).next_back() {
            *left = left.saturating_sub(reply.count());
            if *left == 0 {
                self.open.remove(&chunk);
            }
        }
        self.arrived.insert(first, reply);
    }

    /// Records items that failed without a worker's reply.
    pub(super) fn fail_here(&mut self, first: u64, count: u32, failure: Failure) {
        let reply = Reply::Failed {
            first,
            count,
            failure,
        };
        #[cfg(feature = "progress")]
        if let Some(progress) = &mut self.progress {
            progress.count(&reply);
        }
        self.arrived.insert(first, reply);
    }

    /// Tells the dispatcher to forget the call, once.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            if let Some(link) = &self.link {
                link.close(self.id);
            }
        }
    }
}

impl Drop for Results {
    /// Cancels a lazy call's items not yet started; lets a call whose items
    /// were all sent (an async one) run to its end, as Python does for a
    /// task whose result nobody asks for.
    fn drop(&mut self) {
        if self.sealed && !self.closed {
            self.closed = true;
            if let Some(link) = &self.link {
                link.detach(self.id);
            }
        }
        self.close();
    }
}
