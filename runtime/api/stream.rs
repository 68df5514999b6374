//! The lazy result iterators of `imap` and `imap_unordered`.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::call::Running;
use crate::error::Error;

/// The results of [`Pool::imap`](crate::Pool::imap), in input order.
///
/// It reads the input only as results are taken, with a bounded number of
/// chunks out at once, so an endless input runs in bounded memory. Dropping
/// it cancels the call: items not yet read are never read, and items read
/// but not yet started never run. If the pool is terminated, the results
/// already in come out, then one [`Error::Closed`].
#[must_use = "an imap call does nothing until its results are taken"]
pub struct Imap<'a, O> {
    running: Result<Running<'a>, Option<Error>>,
    output: PhantomData<fn() -> O>,
}

/// The results of [`Pool::imap_unordered`](crate::Pool::imap_unordered), as
/// they come in, each with the index of its item.
#[must_use = "an imap_unordered call does nothing until its results are taken"]
pub struct ImapUnordered<'a, O> {
    running: Result<Running<'a>, Option<Error>>,
    output: PhantomData<fn() -> O>,
}

impl<'a, O> Imap<'a, O> {
    pub(crate) fn new(running: Result<Running<'a>, Error>) -> Self {
        Imap {
            running: running.map_err(Some),
            output: PhantomData,
        }
    }
}

impl<'a, O> ImapUnordered<'a, O> {
    pub(crate) fn new(running: Result<Running<'a>, Error>) -> Self {
        ImapUnordered {
            running: running.map_err(Some),
            output: PhantomData,
        }
    }
}

impl<O: DeserializeOwned> Iterator for Imap<'_, O> {
    type Item = Result<O, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.running {
            Ok(running) => running.next_ordered(),
            // A call that could not start yields its error once.
            Err(error) => error.take().map(Err),
        }
    }
}

impl<O: DeserializeOwned> Iterator for ImapUnordered<'_, O> {
    type Item = Result<(usize, O), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.running {
            Ok(running) => running.next_unordered(),
            Err(error) => error.take().map(Err),
        }
    }
}

impl<O> std::fmt::Debug for Imap<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap").finish_non_exhaustive()
    }
}

impl<O> std::fmt::Debug for ImapUnordered<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapUnordered").finish_non_exhaustive()
    }
}
