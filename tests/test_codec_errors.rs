//! What an item whose data cannot be encoded or decoded costs: that item's
//! result only, with an error that names its index and keeps the codec's
//! own message. Each item's data is read on its own: a result that does not
//! decode fails no other item, a decoding that leaves bytes unread is an
//! error rather than a wrong value, and a panic while the caller decodes a
//! result is that item's error, not an unwind out of the call.
//!
//! Every check runs on a `ProcessPool`, a `ThreadPool` and a `SerialPool`,
//! each under the hang guard.

mod common;

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use common::within;
use forkmap::{Error, Pool, ProcessPool, SerialPool, Task, ThreadPool};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{self, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long one check may take on one pool before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(120);

/// One pool's run of a check.
type Run = Box<dyn FnOnce() + Send>;

/// Runs a check on a `ProcessPool::new(2)`, a `ThreadPool::new(2)` and a
/// `SerialPool::new()`, each on its own thread under the hang guard, and
/// fails once all three have run, naming each pool whose check failed and
/// how.
fn on_every_pool(
    check: &str,
    process: fn(&ProcessPool),
    thread: fn(&ThreadPool),
    serial: fn(&SerialPool),
) {
    let runs: [(&str, Run); 3] = [
        (
            "ProcessPool",
            Box::new(move || process(&ProcessPool::new(2).unwrap())),
        ),
        (
            "ThreadPool",
            Box::new(move || thread(&ThreadPool::new(2).unwrap())),
        ),
        ("SerialPool", Box::new(move || serial(&SerialPool::new()))),
    ];
    let mut failures = Vec::new();
    for (pool, run) in runs {
        let what = format!("{check} on a {pool}");
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| within(&what, LIMIT, run))) {
            failures.push(format!("{pool}: {}", panic_message(&*payload)));
        }
    }
    assert!(
        failures.is_empty(),
        "{check} failed on {} of 3 pools:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (
        payload.downcast_ref::<String>(),
        payload.downcast_ref::<&str>(),
    ) {
        (Some(message), _) => message.clone(),
        (None, Some(message)) => (*message).to_owned(),
        (None, None) => "a panic without a message".to_owned(),
    }
}

/// Runs `body`, a call on a pool, and fails with a clear message if a panic
/// unwinds out of it into the caller.
fn no_unwind<T>(call: &str, body: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        panic!(
            "a panic unwound out of `{call}` into its caller: {}",
            panic_message(&*payload)
        )
    })
}

/// Fails unless a following `map` of 10 items on `pool` gives the right values.
fn assert_still_usable<P: Pool>(pool: &P, after: &str) {
    let values = pool
        .map(|x: u64| x * 2, 0..10)
        .unwrap_or_else(|err| panic!("a map of 10 items after {after} failed: {err}"));
    assert_eq!(
        values,
        (0..10).map(|x| x * 2).collect::<Vec<u64>>(),
        "a map of 10 items after {after}"
    );
}

// ---- an unencodable result (the check this file started with) ------------

/// A result that refuses to be encoded when it holds 13.
#[derive(Debug, PartialEq, Deserialize)]
struct Picky(u64);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("thirteen is unlucky"));
        }
        serializer.serialize_u64(self.0)
    }
}

fn picky(x: u64) -> Picky {
    Picky(x)
}

fn check_unencodable_result_names_its_item(pool: &impl Pool) {
    let results: Vec<Result<Picky, Error>> = pool.imap(picky, 10..16u64).collect();
    for (at, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value.0, 10 + at as u64),
            Err(err) => {
                assert_eq!(at, 3, "only item 3 (value 13) should fail: {err}");
                assert!(matches!(err, Error::Codec { .. }), "{err:?}");
                assert_eq!(err.index(), Some(3), "{err}");
            }
        }
    }
    assert!(results[3].is_err(), "item 3 should have failed");
    let err = pool.map(picky, 10..16u64).unwrap_err();
    assert_eq!(err.index(), Some(3), "{err}");
}

#[test]
fn an_unencodable_result_fails_its_item_with_its_index_on_every_pool() {
    check_unencodable_result_names_its_item(&ProcessPool::new(2).unwrap());
    check_unencodable_result_names_its_item(&ThreadPool::new(2).unwrap());
    check_unencodable_result_names_its_item(&SerialPool::new());
}

// ---- one undecodable result fails one item ---------------------------------

/// How many items the calls over many items have.
const MANY: u64 = 100_000;

/// The one value [`Brittle`] refuses to decode: that of item 50,000.
const BRITTLE: u64 = 50_000;

/// A result that encodes as its `u64`, and whose `Deserialize` (run only in
/// the caller) fails for [`BRITTLE`].
#[derive(Debug, PartialEq)]
struct Brittle(u64);

impl Serialize for Brittle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Brittle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if value == BRITTLE {
            return Err(de::Error::custom("Brittle will not decode 50000"));
        }
        Ok(Brittle(value))
    }
}

fn brittle(x: u64) -> Brittle {
    Brittle(x)
}

fn check_one_undecodable_result_fails_only_its_item<P: Pool>(pool: &P) {
    let brittle_index = BRITTLE as usize;
    let mut failed = Vec::new();
    for (at, result) in pool.imap(brittle, 0..MANY).enumerate() {
        match result {
            Ok(value) => assert_eq!(value, Brittle(at as u64), "imap: the value of item {at}"),
            Err(err) => failed.push((at, err)),
        }
    }
    match failed.as_slice() {
        [(at, err)] if *at == brittle_index => {
            assert!(matches!(err, Error::Codec { .. }), "imap: {err:?}");
            assert_eq!(err.index(), Some(brittle_index), "imap: {err}");
        }
        [] => panic!("imap over {MANY} items: no item failed, item {BRITTLE} should have"),
        [(first, err), ..] => panic!(
            "imap over {MANY} items: {} items failed, items {first}..={}, where only item \
             {BRITTLE} should have; the first failure: {err}",
            failed.len(),
            failed[failed.len() - 1].0,
        ),
    }
    match pool.map(brittle, 0..MANY) {
        Ok(_) => panic!("map over {MANY} items gave every value, item {BRITTLE}'s too"),
        Err(Error::Incomplete {
            completed,
            failed,
            first,
        }) => {
            assert_eq!(
                (completed, failed),
                (MANY as usize - 1, 1),
                "map over {MANY} items: (completed, failed) should be ({}, 1); the first \
                 failure: {first}",
                MANY - 1,
            );
            assert!(matches!(*first, Error::Codec { .. }), "map: {first:?}");
            assert_eq!(first.index(), Some(brittle_index), "map: {first}");
        }
        Err(other) => panic!("map: expected Error::Incomplete, got {other:?}"),
    }
}

#[test]
fn one_undecodable_result_fails_only_its_item_on_every_pool() {
    on_every_pool(
        "one_undecodable_result_fails_only_its_item",
        check_one_undecodable_result_fails_only_its_item,
        check_one_undecodable_result_fails_only_its_item,
        check_one_undecodable_result_fails_only_its_item,
    );
}

// ---- a decoding that leaves bytes unread is an error -----------------------

/// How many items the calls over a few items have.
const FEW: u64 = 20;

/// A pair that encodes as the tuple `(self.0, self.1)` but decodes by
/// reading a tuple of one element: it takes the first number, leaves the
/// second unread and makes it 0. Plain postcard decodes it without error,
/// to a wrong value.
#[derive(Debug, PartialEq)]
struct Lopsided(u64, u64);

impl Serialize for Lopsided {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.0)?;
        tuple.serialize_element(&self.1)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Lopsided {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstOnly;

        impl<'de> Visitor<'de> for FirstOnly {
            type Value = Lopsided;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tuple of one u64")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lopsided, A::Error> {
                let first = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                Ok(Lopsided(first, 0))
            }
        }

        deserializer.deserialize_tuple(1, FirstOnly)
    }
}

/// The `Lopsided` of item `x`.
fn lopsided(x: u64) -> Lopsided {
    Lopsided(x, x + 100)
}

/// What a task taking a `Lopsided` got.
fn unpack(pair: Lopsided) -> (u64, u64) {
    (pair.0, pair.1)
}

/// The premise of the checks below: through plain postcard, `Lopsided`
/// decodes without error to a value other than the one encoded.
fn assert_lopsided_decodes_wrongly_through_plain_postcard() {
    let bytes = postcard::to_stdvec(&lopsided(1)).unwrap();
    assert_eq!(bytes.len(), 2, "two numbers are encoded");
    let decoded = postcard::from_bytes::<Lopsided>(&bytes);
    assert!(
        matches!(decoded, Ok(Lopsided(1, 0))),
        "plain postcard should decode {:?} to Ok(Lopsided(1, 0)), not {decoded:?}",
        lopsided(1),
    );
}

/// Checks that every item of `imap` and `map` of `task` over `items` fails
/// with a codec error naming its index, none giving a value.
fn assert_every_item_fails<P, F, A, I>(pool: &P, task: F, items: impl Fn() -> I, sent: &str)
where
    P: Pool,
    F: Task<(A,)> + Copy,
    F::Output: fmt::Debug,
    A: Serialize + 'static,
    I: Iterator<Item = A> + 'static,
{
    let results: Vec<_> = pool.imap(task, items()).collect();
    assert_eq!(results.len(), FEW as usize, "imap: one result per item");
    for (at, result) in results.iter().enumerate() {
        match result {
            Ok(got) => panic!(
                "imap: item {at} gave Ok({got:?}), a silent wrong value: its {sent} {:?} \
                 decodes leaving bytes unread, which should be its error",
                lopsided(at as u64),
            ),
            Err(err) => {
                assert!(
                    matches!(err, Error::Codec { .. }),
                    "imap item {at}: {err:?}"
                );
                assert_eq!(err.index(), Some(at), "imap item {at}: {err}");
            }
        }
    }
    match pool.map(task, items()) {
        Ok(values) => panic!(
            "map gave Ok({values:?}), silent wrong values: every {sent} decodes leaving \
             bytes unread"
        ),
        Err(Error::Incomplete {
            completed,
            failed,
            first,
        }) => {
            assert_eq!(
                (completed, failed),
                (0, FEW as usize),
                "map: (completed, failed); the first failure: {first}"
            );
            assert!(matches!(*first, Error::Codec { .. }), "map: {first:?}");
            assert_eq!(first.index(), Some(0), "map: {first}");
        }
        Err(other) => panic!("map: expected Error::Incomplete, got {other:?}"),
    }
}

fn check_an_argument_that_decodes_short_is_an_error<P: Pool>(pool: &P) {
    assert_lopsided_decodes_wrongly_through_plain_postcard();
    assert_every_item_fails(pool, unpack, || (0..FEW).map(lopsided), "argument");
}

fn check_a_result_that_decodes_short_is_an_error<P: Pool>(pool: &P) {
    assert_lopsided_decodes_wrongly_through_plain_postcard();
    assert_every_item_fails(pool, lopsided, || 0..FEW, "result");
}

#[test]
fn an_argument_whose_decoding_leaves_bytes_unread_is_an_error_not_a_wrong_value_on_every_pool() {
    on_every_pool(
        "an_argument_that_decodes_short_is_an_error",
        check_an_argument_that_decodes_short_is_an_error,
        check_an_argument_that_decodes_short_is_an_error,
        check_an_argument_that_decodes_short_is_an_error,
    );
}

#[test]
fn a_result_whose_decoding_leaves_bytes_unread_is_an_error_not_a_wrong_value_on_every_pool() {
    on_every_pool(
        "a_result_that_decodes_short_is_an_error",
        check_a_result_that_decodes_short_is_an_error,
        check_a_result_that_decodes_short_is_an_error,
        check_a_result_that_decodes_short_is_an_error,
    );
}

// ---- the user's own message survives ---------------------------------------

/// The item whose data fails in the checks of the user's message.
const QUOTA: u64 = 3;

/// The user's message.
const DISK_QUOTA: &str = "disk quota";

fn encode_u64<S: Serializer>(value: u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(value)
}

fn decode_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    u64::deserialize(deserializer)
}

/// Encodes `value`, failing with the user's message for [`QUOTA`].
fn encode_u64_but_quota<S: Serializer>(value: u64, serializer: S) -> Result<S::Ok, S::Error> {
    if value == QUOTA {
        return Err(ser::Error::custom(DISK_QUOTA));
    }
    serializer.serialize_u64(value)
}

/// Decodes a `u64`, failing with the user's message for [`QUOTA`].
fn decode_u64_but_quota<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if value == QUOTA {
        return Err(de::Error::custom(DISK_QUOTA));
    }
    Ok(value)
}

/// Gives a `u64` newtype the `Serialize` and `Deserialize` made of `encode`
/// and `decode`.
macro_rules! codec {
    ($type:ident, $encode:ident, $decode:ident) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $encode(self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $decode(deserializer).map($type)
            }
        }
    };
}

/// An argument whose encoding, in the caller, fails for [`QUOTA`].
#[derive(Debug)]
struct ArgumentEncodingFails(u64);
codec!(ArgumentEncodingFails, encode_u64_but_quota, decode_u64);

/// An argument whose decoding, in the worker, fails for [`QUOTA`].
#[derive(Debug)]
struct ArgumentDecodingFails(u64);
codec!(ArgumentDecodingFails, encode_u64, decode_u64_but_quota);

/// A result whose encoding, in the worker, fails for [`QUOTA`].
#[derive(Debug)]
struct ResultEncodingFails(u64);
codec!(ResultEncodingFails, encode_u64_but_quota, decode_u64);

/// A result whose decoding, in the caller, fails for [`QUOTA`].
#[derive(Debug)]
struct ResultDecodingFails(u64);
codec!(ResultDecodingFails, encode_u64, decode_u64_but_quota);

fn takes_argument_encoding_fails(argument: ArgumentEncodingFails) -> u64 {
    argument.0
}

fn takes_argument_decoding_fails(argument: ArgumentDecodingFails) -> u64 {
    argument.0
}

fn gives_result_encoding_fails(x: u64) -> ResultEncodingFails {
    ResultEncodingFails(x)
}

fn gives_result_decoding_fails(x: u64) -> ResultDecodingFails {
    ResultDecodingFails(x)
}

/// Fails unless `err` is item `QUOTA`'s codec error with the user's message.
fn assert_quota_error(err: &Error, call: &str) {
    let item = err.item_error();
    assert!(matches!(item, Error::Codec { .. }), "{call}: {err:?}");
    assert_eq!(err.index(), Some(QUOTA as usize), "{call}: {err}");
    let shown = err.to_string();
    assert!(
        shown.contains(DISK_QUOTA),
        "{call}: the error's Display lacks the user's message {DISK_QUOTA:?}: {shown}"
    );
}

/// Runs `task` over `FEW` items made by `item` with `imap` and `map`: item
/// [`QUOTA`] fails with the user's message, every other gives its value
/// (`value` of the task's output is the item's number).
fn check_the_users_message_survives<P, F, A>(
    pool: &P,
    task: F,
    item: fn(u64) -> A,
    value: fn(F::Output) -> u64,
) where
    P: Pool,
    F: Task<(A,)> + Copy,
    A: Serialize + 'static,
{
    let results: Vec<_> = pool.imap(task, (0..FEW).map(item)).collect();
    assert_eq!(results.len(), FEW as usize, "imap: one result per item");
    for (at, result) in results.into_iter().enumerate() {
        match result {
            Ok(got) => {
                let got = value(got);
                assert_ne!(at as u64, QUOTA, "imap: item {QUOTA} gave Ok({got})");
                assert_eq!(got, at as u64, "imap: the value of item {at}");
            }
            Err(err) if at as u64 == QUOTA => assert_quota_error(&err, "imap"),
            Err(err) => panic!("imap: item {at} failed, only item {QUOTA} should: {err}"),
        }
    }
    match pool.map(task, (0..FEW).map(item)) {
        Ok(_) => panic!("map gave every value, item {QUOTA}'s too"),
        Err(err) => {
            let Error::Incomplete {
                completed, failed, ..
            } = &err
            else {
                panic!("map: expected Error::Incomplete, got {err:?}");
            };
            assert_eq!(
                (*completed, *failed),
                (FEW as usize - 1, 1),
                "map: (completed, failed): {err}"
            );
            assert_quota_error(&err, "map");
        }
    }
}

fn check_an_argument_that_fails_to_encode_keeps_the_message<P: Pool>(pool: &P) {
    check_the_users_message_survives(
        pool,
        takes_argument_encoding_fails,
        ArgumentEncodingFails,
        |x| x,
    );
}

fn check_an_argument_that_fails_to_decode_keeps_the_message<P: Pool>(pool: &P) {
    check_the_users_message_survives(
        pool,
        takes_argument_decoding_fails,
        ArgumentDecodingFails,
        |x| x,
    );
}

fn check_a_result_that_fails_to_encode_keeps_the_message<P: Pool>(pool: &P) {
    check_the_users_message_survives(pool, gives_result_encoding_fails, |x| x, |r| r.0);
}

fn check_a_result_that_fails_to_decode_keeps_the_message<P: Pool>(pool: &P) {
    check_the_users_message_survives(pool, gives_result_decoding_fails, |x| x, |r| r.0);
}

#[test]
fn an_argument_that_fails_to_encode_fails_its_item_with_the_users_message_on_every_pool() {
    on_every_pool(
        "an_argument_that_fails_to_encode_keeps_the_message",
        check_an_argument_that_fails_to_encode_keeps_the_message,
        check_an_argument_that_fails_to_encode_keeps_the_message,
        check_an_argument_that_fails_to_encode_keeps_the_message,
    );
}

#[test]
fn an_argument_that_fails_to_decode_fails_its_item_with_the_users_message_on_every_pool() {
    on_every_pool(
        "an_argument_that_fails_to_decode_keeps_the_message",
        check_an_argument_that_fails_to_decode_keeps_the_message,
        check_an_argument_that_fails_to_decode_keeps_the_message,
        check_an_argument_that_fails_to_decode_keeps_the_message,
    );
}

#[test]
fn a_result_that_fails_to_encode_fails_its_item_with_the_users_message_on_every_pool() {
    on_every_pool(
        "a_result_that_fails_to_encode_keeps_the_message",
        check_a_result_that_fails_to_encode_keeps_the_message,
        check_a_result_that_fails_to_encode_keeps_the_message,
        check_a_result_that_fails_to_encode_keeps_the_message,
    );
}

#[test]
fn a_result_that_fails_to_decode_fails_its_item_with_the_users_message_on_every_pool() {
    on_every_pool(
        "a_result_that_fails_to_decode_keeps_the_message",
        check_a_result_that_fails_to_decode_keeps_the_message,
        check_a_result_that_fails_to_decode_keeps_the_message,
        check_a_result_that_fails_to_decode_keeps_the_message,
    );
}

// ---- a panic in the caller's decoding is that item's error -----------------

/// The one value [`Touchy`] panics on when it decodes.
const TOUCHY: u64 = 3;

/// What [`Touchy`] panics with.
const TOUCHY_PANIC: &str = "Touchy panics decoding 3";

/// A result that encodes as its `u64`, and whose `Deserialize` panics for
/// [`TOUCHY`]. Only a result, never an argument: only the caller decodes
/// it, on every pool.
#[derive(Debug, PartialEq)]
struct Touchy(u64);

impl Serialize for Touchy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Touchy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if value == TOUCHY {
            panic!("{TOUCHY_PANIC}");
        }
        Ok(Touchy(value))
    }
}

fn touchy(x: u64) -> Touchy {
    Touchy(x)
}

/// Fails unless `err` is item `index`'s codec error or panic, showing the
/// panic's message.
fn assert_decoding_panic_error(err: &Error, index: usize, call: &str) {
    assert!(
        matches!(err.item_error(), Error::Codec { .. } | Error::Panic { .. }),
        "{call}: expected Error::Codec or Error::Panic, got {err:?}"
    );
    assert_eq!(err.index(), Some(index), "{call}: {err}");
    let shown = err.to_string();
    assert!(
        shown.contains(TOUCHY_PANIC),
        "{call}: the error's Display lacks the panic's message {TOUCHY_PANIC:?}: {shown}"
    );
}

fn check_a_panic_decoding_a_result_is_its_items_error<P: Pool>(pool: &P) {
    let touchy_index = TOUCHY as usize;

    let results = no_unwind("imap", || pool.imap(touchy, 0..FEW).collect::<Vec<_>>());
    assert_eq!(results.len(), FEW as usize, "imap: one result per item");
    for (at, result) in results.iter().enumerate() {
        match result {
            Ok(value) => {
                assert_ne!(at, touchy_index, "imap: item {TOUCHY} gave Ok({value:?})");
                assert_eq!(*value, Touchy(at as u64), "imap: the value of item {at}");
            }
            Err(err) if at == touchy_index => assert_decoding_panic_error(err, at, "imap"),
            Err(err) => panic!("imap: item {at} failed, only item {TOUCHY} should: {err}"),
        }
    }
    assert_still_usable(pool, "the imap");

    match no_unwind("map", || pool.map(touchy, 0..FEW)) {
        Ok(_) => panic!("map gave every value, item {TOUCHY}'s too"),
        Err(err) => {
            let Error::Incomplete {
                completed, failed, ..
            } = &err
            else {
                panic!("map: expected Error::Incomplete, got {err:?}");
            };
            assert_eq!(
                (*completed, *failed),
                (FEW as usize - 1, 1),
                "map: (completed, failed): {err}"
            );
            assert_decoding_panic_error(&err, touchy_index, "map");
        }
    }
    assert_still_usable(pool, "the map");

    match no_unwind("apply", || pool.apply(touchy, (TOUCHY,))) {
        Ok(value) => panic!("apply gave Ok({value:?})"),
        // The one item of an `apply` is item 0.
        Err(err) => assert_decoding_panic_error(&err, 0, "apply"),
    }
    assert_still_usable(pool, "the apply");
    let value = pool
        .apply(touchy, (TOUCHY + 1,))
        .unwrap_or_else(|err| panic!("an apply after the failed one: {err}"));
    assert_eq!(value, Touchy(TOUCHY + 1), "an apply after the failed one");
}

#[test]
fn a_panic_while_the_caller_decodes_a_result_is_that_items_error_on_every_pool() {
    on_every_pool(
        "a_panic_decoding_a_result_is_its_items_error",
        check_a_panic_decoding_a_result_is_its_items_error,
        check_a_panic_decoding_a_result_is_its_items_error,
        check_a_panic_decoding_a_result_is_its_items_error,
    );
}
