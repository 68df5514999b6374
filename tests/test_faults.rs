//! The fault matrix of issue 5: one item of twenty panics, exits, aborts,
//! segfaults, is killed from outside, overflows its stack, goes past the
//! memory limit or past the timeout. For every fault, that item alone fails,
//! with the right error, naming its index and the function; every other
//! item gives its value; `map` says 19 completed and 1 failed; the same pool
//! then serves a clean call; and the pool is back to its two workers.
//!
//! The tests count the children of this process, so they take turns (see
//! [`bounded`]): two pools alive at once would count each other's workers.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use forkmap::{remote, Death, Error, Pool, ProcessPool, Task};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const WORKERS: usize = 2;
const ITEMS: u64 = 20;
/// The item that does the fault.
const FAULTY: u64 = 7;
const TIMEOUT: Duration = Duration::from_millis(500);
const MEMORY_LIMIT: u64 = 64 << 20;
/// How long one test may take before it counts as hung.
const BOUND: Duration = Duration::from_secs(30);

/// What every item but the faulty one returns.
fn value(x: u64) -> u64 {
    x * x + 1
}

fn panics_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        panic!("item seven panics on purpose");
    }
    value(x)
}

fn exits_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        std::process::exit(3);
    }
    value(x)
}

fn aborts_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        std::process::abort();
    }
    value(x)
}

fn segfaults_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        // SAFETY: not sound, on purpose: writing through a null pointer
        // crashes the process that runs it with SIGSEGV, which is the fault
        // under test. Only a worker process runs this item; the test process
        // never calls this function itself.
        unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
    }
    value(x)
}

/// Recurses until the stack runs out: `black_box` keeps each frame's array
/// on the stack and stops the recursion from becoming a loop.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 32])
}

fn overflows_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        return recurse(0);
    }
    value(x)
}

/// Touches 1 GiB, a MiB at a time, well past [`MEMORY_LIMIT`]: the pool's
/// watchdog should kill the worker long before the loop ends.
fn bloats_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        let mut kept = Vec::new();
        for _ in 0..1024 {
            kept.push(vec![1u8; 1 << 20]);
            thread::sleep(Duration::from_millis(1));
        }
        return kept.len() as u64;
    }
    value(x)
}

fn hangs_at_seven(x: u64) -> u64 {
    if x == FAULTY {
        thread::sleep(Duration::from_secs(30));
    }
    value(x)
}

/// Item 7 posts its worker's pid in `pid_file` and waits to be killed.
#[remote]
fn waits_to_be_killed(pid_file: String) -> impl Fn(u64) -> u64 {
    move |x| {
        if x == FAULTY {
            // Written aside and renamed, so the test never reads half a pid.
            let aside = format!("{pid_file}.tmp");
            fs::write(&aside, std::process::id().to_string()).unwrap();
            fs::rename(&aside, &pid_file).unwrap();
            thread::sleep(Duration::from_secs(30));
        }
        value(x)
    }
}

/// Runs `body` on a thread of its own, while no other test of this file
/// runs, and fails if it takes longer than [`BOUND`].
fn bounded(body: impl FnOnce() + Send + 'static) {
    let _turn = common::alone();
    common::within("the test", BOUND, body);
}

fn workers() -> Vec<u32> {
    common::worker_pids()
}

/// A file name no other test run uses.
fn pid_file(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "forkmap-test-faults-{}-{test}.pid",
        std::process::id()
    ))
}

/// Waits for item 7 to post its pid in `pid_file`, checks that it is a
/// worker of this process, and kills it with SIGKILL.
fn kill_when_posted(pid_file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(text) = fs::read_to_string(pid_file) {
            break text;
        }
        assert!(Instant::now() < deadline, "item 7 never posted its pid");
        thread::sleep(Duration::from_millis(5));
    };
    fs::remove_file(pid_file).unwrap();
    assert!(
        common::is_worker(pid.parse().unwrap()),
        "pid {pid} is not a worker of this process"
    );
    kill(Pid::from_raw(pid.parse().unwrap()), Signal::SIGKILL).unwrap();
}

/// Runs `call` while `accomplice` runs on another thread, and waits for both.
fn alongside<T>(accomplice: &(dyn Fn() + Sync), call: impl FnOnce() -> T) -> T {
    thread::scope(|scope| {
        let helper = scope.spawn(accomplice);
        let out = call();
        helper.join().unwrap();
        out
    })
}

fn no_accomplice() {}

/// Checks one row of the matrix on `pool`: `task` does its fault on item 7,
/// `function` is the end of its name, and `is_fault` recognises the error
/// item 7 must fail with. `accomplice` runs alongside each call that reaches
/// item 7.
fn check_row<P, F>(
    pool: &P,
    task: F,
    function: &str,
    is_fault: impl Fn(&Error) -> bool,
    accomplice: &(dyn Fn() + Sync),
) where
    P: Pool,
    F: Task<(u64,), Output = u64> + Clone,
{
    let results: Vec<Result<u64, Error>> =
        alongside(accomplice, || pool.imap(task.clone(), 0..ITEMS).collect());
    assert_eq!(results.len(), ITEMS as usize);
    for (index, result) in results.into_iter().enumerate() {
        if index as u64 == FAULTY {
            let err = result.expect_err("item 7 must fail");
            assert!(
                is_fault(&err),
                "item 7 failed with the wrong error: {err:?}"
            );
            assert_eq!(err.index(), Some(FAULTY as usize), "{err}");
            let named = err.function().expect("the error names the function");
            assert!(named.ends_with(function), "{named} is not {function}");
            let message = err.to_string();
            assert!(message.contains("item 7"), "{message}");
            assert!(message.contains(function), "{message}");
        } else {
            match result {
                Ok(got) => assert_eq!(got, value(index as u64), "item {index}"),
                Err(err) => panic!("item {index} failed too: {err}"),
            }
        }
    }

    let err = alongside(accomplice, || pool.map(task, 0..ITEMS)).expect_err("map must fail");
    assert!(
        matches!(
            err,
            Error::Incomplete {
                completed: 19,
                failed: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(is_fault(err.item_error()), "{err:?}");
    assert_eq!(err.index(), Some(FAULTY as usize), "{err}");
    assert!(err.to_string().contains(function), "{err}");

    let expected: Vec<u64> = (0..ITEMS).map(value).collect();
    assert_eq!(pool.map(value, 0..ITEMS).unwrap(), expected);
    let left = workers();
    assert_eq!(
        left.len(),
        WORKERS,
        "the pool should be back to {WORKERS} workers, but these are its workers: {left:?}"
    );
}

fn pool() -> ProcessPool {
    ProcessPool::new(WORKERS).unwrap()
}

/// Checks that dropping the pool ended and reaped every worker.
fn drop_and_count(pool: ProcessPool) {
    drop(pool);
    let left = workers();
    assert!(left.is_empty(), "workers left after drop: {left:?}");
}

/// Checks one row of the matrix on a fresh pool of [`WORKERS`], with no
/// accomplice, then drops the pool and counts what is left.
fn plain_row<F>(task: F, function: &'static str, is_fault: fn(&Error) -> bool)
where
    F: Task<(u64,), Output = u64> + Clone + Send + 'static,
{
    bounded(move || {
        let pool = pool();
        check_row(&pool, task, function, is_fault, &no_accomplice);
        drop_and_count(pool);
    });
}

fn died_of(err: &Error, expected: Death) -> bool {
    matches!(err, Error::WorkerDied { index: 7, death, .. } if *death == expected)
}

fn killed_by(err: &Error, signal: Signal, name: &str) -> bool {
    died_of(err, Death::Signal(signal as i32)) && err.to_string().contains(name)
}

#[test]
fn a_panic() {
    plain_row(panics_at_seven, "panics_at_seven", |err| {
        let Error::Panic {
            index: 7, panic, ..
        } = err
        else {
            return false;
        };
        // The location is where `panics_at_seven` panicked.
        let here = concat!(file!(), ":");
        let text = err.to_string();
        panic.message == "item seven panics on purpose"
            && text.contains("item seven panics on purpose")
            && text.contains("test_faults.rs")
            && panic
                .location
                .as_deref()
                .is_some_and(|at| at.starts_with(here))
            && err.is_panic()
    });
}

#[test]
fn an_exit() {
    plain_row(exits_at_seven, "exits_at_seven", |err| {
        died_of(err, Death::Exit(3))
            && err.is_worker_death()
            && err.to_string().contains("exited with code 3")
    });
}

#[test]
fn an_abort() {
    plain_row(aborts_at_seven, "aborts_at_seven", |err| {
        killed_by(err, Signal::SIGABRT, "SIGABRT")
    });
}

#[test]
fn a_segmentation_fault() {
    plain_row(segfaults_at_seven, "segfaults_at_seven", |err| {
        killed_by(err, Signal::SIGSEGV, "SIGSEGV")
    });
}

#[test]
fn a_sigkill_from_outside() {
    bounded(|| {
        let pool = pool();
        let pid_file = pid_file("sigkill");
        let _ = fs::remove_file(&pid_file);
        check_row(
            &pool,
            waits_to_be_killed(pid_file.to_str().unwrap().to_owned()),
            "waits_to_be_killed",
            |err| killed_by(err, Signal::SIGKILL, "SIGKILL"),
            &|| kill_when_posted(&pid_file),
        );
        drop_and_count(pool);
    });
}

#[test]
fn a_stack_overflow() {
    plain_row(
        overflows_at_seven,
        "overflows_at_seven",
        // Rust's handler for a fault on the stack's guard page prints
        // "has overflowed its stack" and aborts.
        |err| killed_by(err, Signal::SIGABRT, "SIGABRT"),
    );
}

#[test]
fn memory_past_the_limit() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(WORKERS)
            .memory_limit(MEMORY_LIMIT)
            .build()
            .unwrap();
        check_row(
            &pool,
            bloats_at_seven,
            "bloats_at_seven",
            |err| {
                matches!(err, Error::OutOfMemory { index: 7, limit, .. } if *limit == MEMORY_LIMIT)
                    && err.is_out_of_memory()
            },
            &no_accomplice,
        );
        drop_and_count(pool);
    });
}

fn timed_out(err: &Error) -> bool {
    matches!(err, Error::Timeout { index: 7, timeout, .. } if *timeout == TIMEOUT)
        && err.is_timeout()
}

#[test]
fn a_hang_past_the_builders_timeout() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(WORKERS)
            .timeout(TIMEOUT)
            .build()
            .unwrap();
        check_row(
            &pool,
            hangs_at_seven,
            "hangs_at_seven",
            timed_out,
            &no_accomplice,
        );
        drop_and_count(pool);
    });
}

#[test]
fn a_hang_past_with_timeout() {
    bounded(|| {
        let pool = pool();
        check_row(
            &pool.with_timeout(TIMEOUT),
            hangs_at_seven,
            "hangs_at_seven",
            timed_out,
            &no_accomplice,
        );
        // The pool itself has no timeout, and still serves.
        assert_eq!(pool.map(value, 0..3).unwrap(), [1, 2, 5]);
        drop_and_count(pool);
    });
}

/// How many processes the machine has started since it booted.
fn forks_so_far() -> u64 {
    fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("processes ")?.trim().parse().ok())
        .unwrap()
}

fn abort_at_start() {
    std::process::abort();
}

#[test]
fn a_worker_that_dies_before_it_starts_is_not_replaced_in_a_loop() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(WORKERS)
            .initializer(abort_at_start)
            .build()
            .unwrap();
        let before = forks_so_far();
        thread::sleep(Duration::from_millis(500));
        let forked = forks_so_far() - before;
        assert!(
            forked < 50,
            "an idle pool whose workers die at start forked {forked} times in 0.5 s"
        );
        // Work still gets an answer: the worker that takes it dies at start too.
        let err = pool.map(value, 0..4).unwrap_err();
        assert!(matches!(err.item_error(), Error::Setup { .. }), "{err}");
    });
}

#[remote]
fn slow_to_build(build_ms: u64) -> impl Fn(u64) -> u64 {
    thread::sleep(Duration::from_millis(build_ms));
    move |x| value(x)
}

#[test]
fn a_factory_that_runs_past_the_timeout_fails_its_items() {
    bounded(|| {
        let pool = ProcessPool::new(WORKERS).unwrap();
        let started = Instant::now();
        let err = pool
            .with_timeout(TIMEOUT)
            .map(slow_to_build(60_000), 0..4)
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the factory was let run for {:?}",
            started.elapsed()
        );
        assert_eq!(pool.map(value, 0..3).unwrap(), [1, 2, 5]);
    });
}

fn slow_initializer() {
    thread::sleep(Duration::from_millis(1400));
}

#[remote]
fn slow_to_build_and_run(ms: u64) -> impl Fn(u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    move |x| {
        thread::sleep(Duration::from_millis(ms));
        value(x)
    }
}

/// The worker's initializer, the factory's body and the item each take
/// most of the timeout, and none runs past it: the call succeeds (a
/// chunk's time as a whole is bounded, by a timeout for each of the three).
#[test]
fn steps_each_under_the_timeout_add_up_past_it() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(1)
            .initializer(slow_initializer)
            .build()
            .unwrap();
        let slow = pool.with_timeout(Duration::from_secs(2));
        assert_eq!(slow.map(slow_to_build_and_run(1400), 0..1).unwrap(), [1]);
    });
}

// ---- faults outside the matrix (from test_failures.rs) -------------------

#[test]
fn a_panic_in_apply_async_comes_back_from_get() {
    bounded(|| {
        let pool = ProcessPool::new(1).unwrap();
        let err = pool
            .apply_async(panics_at_seven, (FAULTY,))
            .get()
            .unwrap_err();
        let Error::Panic { index, panic, .. } = err else {
            panic!("not a panic: {err}")
        };
        assert_eq!(index, 0, "apply_async has one item");
        assert_eq!(panic.message, "item seven panics on purpose");
    });
}

#[test]
fn a_worker_that_aborts_is_reported_by_signal() {
    bounded(|| {
        let pool = ProcessPool::new(1).unwrap();
        let err = pool
            .apply(|| -> u8 { std::process::abort() }, ())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::WorkerDied {
                    death: Death::Signal(6),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("SIGABRT"), "{err}");
        assert_eq!(pool.apply(|| 1u8, ()).unwrap(), 1);
    });
}

fn exits_at_37(x: u64) -> u64 {
    if x == 37 {
        std::process::exit(37);
    }
    x * 2
}

#[test]
fn a_death_in_the_middle_of_a_chunk_fails_only_the_item_it_was_running() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(2)
            .chunk_size(100)
            .build()
            .unwrap();
        let results: Vec<_> = pool.imap(exits_at_37, 0..300u64).collect();
        assert_eq!(results.len(), 300);
        for (index, result) in results.iter().enumerate() {
            match result {
                Ok(value) => assert_eq!(*value, index as u64 * 2),
                Err(err) => {
                    assert_eq!(index, 37, "only item 37 fails: {err}");
                    assert!(
                        matches!(
                            err,
                            Error::WorkerDied {
                                index: 37,
                                death: Death::Exit(37),
                                ..
                            }
                        ),
                        "{err}"
                    );
                }
            }
        }
        assert!(results[37].is_err());
    });
}

/// Leaves a mark for its item in `dir`, and aborts the worker on item 3.
fn mark_or_abort_at_3((dir, x): (String, u64)) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    std::fs::write(format!("{dir}/{x}"), b"").unwrap();
    x
}

#[test]
fn a_dropped_handles_items_still_run_after_a_death_and_join_returns() {
    let dir = std::env::temp_dir().join(format!("forkmap-detached-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.to_string_lossy().into_owned();
    // `bounded` fails the test if `join` does not return after the death.
    bounded(move || {
        let pool = ProcessPool::builder()
            .workers(1)
            .chunk_size(10)
            .build()
            .unwrap();
        let items: Vec<(String, u64)> = (0..10).map(|x| (path.clone(), x)).collect();
        drop(pool.map_async(mark_or_abort_at_3, items));
        pool.join();
    });
    let marks = fs::read_dir(&dir).unwrap().count();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(marks, 9, "every item but the one that aborted ran");
}

/// An argument whose decoding panics for 5.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Touchy(u64);

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        assert!(value != 5, "five does not decode");
        Ok(Touchy(value))
    }
}

/// A result whose encoding panics for 5.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
struct Loud(u64);

impl serde::Serialize for Loud {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(self.0 != 5, "five does not encode");
        serializer.serialize_u64(self.0)
    }
}

fn touchy_value(touchy: Touchy) -> u64 {
    touchy.0
}

fn loud(x: u64) -> Loud {
    Loud(x)
}

#[test]
fn a_panic_while_arguments_decode_fails_that_item_only() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(1)
            .chunk_size(10)
            .build()
            .unwrap();
        let results: Vec<_> = pool.imap(touchy_value, (0..10).map(Touchy)).collect();
        for (index, result) in results.iter().enumerate() {
            if index == 5 {
                let err = result.as_ref().unwrap_err();
                assert!(matches!(err, Error::Codec { .. }), "{err:?}");
                assert_eq!(err.index(), Some(5), "{err}");
                assert!(err.to_string().contains("five does not decode"), "{err}");
            } else {
                // Each item's arguments are delimited on their own, so the
                // items after it still decode.
                assert_eq!(result.as_ref().ok(), Some(&(index as u64)));
            }
        }
        assert_eq!(pool.map(touchy_value, [Touchy(1)]).unwrap(), [1]);
    });
}

#[test]
fn a_panic_while_a_result_encodes_fails_that_item_only() {
    bounded(|| {
        let pool = ProcessPool::builder()
            .workers(1)
            .chunk_size(10)
            .build()
            .unwrap();
        let results: Vec<_> = pool.imap(loud, 0..10u64).collect();
        for (index, result) in results.iter().enumerate() {
            if index == 5 {
                let err = result.as_ref().unwrap_err();
                assert!(err.is_panic(), "{err}");
                assert!(err.to_string().contains("five does not encode"), "{err}");
            } else {
                assert_eq!(result.as_ref().ok(), Some(&Loud(index as u64)));
            }
        }
    });
}
