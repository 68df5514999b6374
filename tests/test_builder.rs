//! `ProcessPool::builder()` and `ThreadPool::builder()`: defaults, invalid
//! values, chunk sizes, worker replacement and initializers.

mod common;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use forkmap::{remote, Error, Pool, ProcessPool, ThreadPool};

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

fn thread_id(_: u64) -> String {
    format!("{:?}", std::thread::current().id())
}

/// Fails the test unless `built` is `Err(Error::Config(_))`.
fn assert_config_error<P>(built: Result<P, Error>, what: &str) {
    match built {
        Err(Error::Config(_)) => {}
        Err(other) => panic!("{what}: expected Error::Config, got {other:?}"),
        Ok(_) => panic!("{what}: built a pool"),
    }
}

/// Runs `body` under the shared hang guard: a pool that hangs fails the
/// test instead of stalling it.
fn within_30_seconds<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    common::within("the test", Duration::from_secs(30), body)
}

/// How often each value occurs.
fn counts<T: std::hash::Hash + Eq>(values: Vec<T>) -> HashMap<T, usize> {
    let mut counts = HashMap::new();
    for value in values {
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}

#[test]
fn workers_default_to_the_available_parallelism() {
    let expected = std::thread::available_parallelism().unwrap().get();
    assert_eq!(ProcessPool::builder().build().unwrap().workers(), expected);
    assert_eq!(ThreadPool::builder().build().unwrap().workers(), expected);
    assert_eq!(
        ProcessPool::builder().workers(3).build().unwrap().workers(),
        3
    );
    assert_eq!(
        ThreadPool::builder().workers(3).build().unwrap().workers(),
        3
    );
}

#[test]
fn zero_is_a_configuration_error() {
    assert_config_error(
        ProcessPool::builder().workers(0).build(),
        "process workers(0)",
    );
    assert_config_error(
        ProcessPool::builder().chunk_size(0).build(),
        "process chunk_size(0)",
    );
    assert_config_error(
        ProcessPool::builder().max_tasks_per_worker(0).build(),
        "process max_tasks_per_worker(0)",
    );
    assert_config_error(
        ThreadPool::builder().workers(0).build(),
        "thread workers(0)",
    );
    assert_config_error(
        ThreadPool::builder().chunk_size(0).build(),
        "thread chunk_size(0)",
    );
    assert_config_error(
        ThreadPool::builder().max_tasks_per_worker(0).build(),
        "thread max_tasks_per_worker(0)",
    );
}

#[test]
fn too_many_workers_is_a_configuration_error() {
    // Not an allocation of a slot per worker that aborts the program.
    for workers in [(1 << 16) + 1, 1 << 40, usize::MAX] {
        assert_config_error(
            ProcessPool::builder().workers(workers).build(),
            "process workers",
        );
        assert_config_error(
            ThreadPool::builder().workers(workers).build(),
            "thread workers",
        );
    }
}

#[test]
fn a_zero_timeout_for_one_call_is_a_configuration_error() {
    let pool = ProcessPool::new(1).unwrap();
    let refused = pool.with_timeout(Duration::ZERO).map(square, 0..4u64);
    assert!(matches!(refused, Err(Error::Config(_))), "{refused:?}");
    assert_eq!(pool.map(square, 0..3u64).unwrap(), [0, 1, 4]);
}

/// Timeouts too long to add to the clock are as good as none: calls run,
/// and the pool serves on (the dispatcher used to panic, and later calls to
/// wait for good).
#[test]
fn timeouts_of_any_length_work() {
    within_30_seconds(|| {
        let pool = ProcessPool::builder()
            .workers(2)
            .timeout(Duration::MAX)
            .build()
            .unwrap();
        for _ in 0..2 {
            assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
        }
        let huge = pool.with_timeout(Duration::from_secs(u64::MAX / 2));
        assert_eq!(huge.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
        assert_eq!(pool.apply(square, (5,)).unwrap(), 25);
    });
}

/// Checks that the 20 items, run by workers named by `ran_in`, ran at most
/// two to a worker, so on 10 workers at least, and that the replaced workers
/// still serve later calls.
fn replaced_after_two_tasks<P: Pool, T: std::hash::Hash + Eq + std::fmt::Debug>(
    pool: &P,
    ran_in: Vec<T>,
) {
    let counts = counts(ran_in);
    assert!(
        counts.values().all(|&n| n <= 2),
        "a worker ran more than 2 items: {counts:?}"
    );
    assert!(
        counts.len() >= 10,
        "only {} workers: {counts:?}",
        counts.len()
    );
    assert_eq!(
        pool.map(square, 0..10u64).unwrap(),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

#[test]
fn a_process_worker_is_replaced_after_max_tasks() {
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_worker(2)
        .build()
        .unwrap();
    let pids = pool.map(pid, 0..20u64).unwrap();
    assert_eq!(pids.len(), 20);
    assert!(pids.iter().all(|&p| p != std::process::id()));
    replaced_after_two_tasks(&pool, pids);
}

#[test]
fn a_thread_worker_is_replaced_after_max_tasks() {
    let pool = ThreadPool::builder()
        .workers(2)
        .max_tasks_per_worker(2)
        .build()
        .unwrap();
    let threads = pool.map(thread_id, 0..20u64).unwrap();
    assert_eq!(threads.len(), 20);
    let here = thread_id(0);
    assert!(threads.iter().all(|t| *t != here));
    replaced_after_two_tasks(&pool, threads);
}

#[test]
fn chunk_size_one_keeps_results_in_order() {
    let expected: Vec<u64> = (0..2_000u64).map(square).collect();
    let process = ProcessPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    assert_eq!(process.map(square, 0..2_000u64).unwrap(), expected);
    let lazily: Vec<u64> = process
        .imap(square, 0..2_000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(lazily, expected);
    let thread = ThreadPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    assert_eq!(thread.map(square, 0..2_000u64).unwrap(), expected);
}

#[test]
fn a_large_chunk_size_keeps_results_in_order() {
    let expected: Vec<u64> = (0..2_000u64).map(square).collect();
    let process = ProcessPool::builder()
        .workers(2)
        .chunk_size(1_000_000)
        .build()
        .unwrap();
    assert_eq!(process.map(square, 0..2_000u64).unwrap(), expected);
}

// ---- initializers ----------------------------------------------------------
//
// Each test has its own static: a thread pool's initializer runs in this
// process, and a process pool forked afterwards would inherit what it set.

static INITIALIZED: AtomicU64 = AtomicU64::new(0);

fn initialize() {
    INITIALIZED.store(42, Ordering::SeqCst);
}

fn read_initialized(_: u64) -> u64 {
    INITIALIZED.load(Ordering::SeqCst)
}

#[test]
fn a_plain_fn_initializer_runs_in_every_process_worker() {
    let pool = ProcessPool::builder()
        .workers(2)
        .initializer(initialize)
        .build()
        .unwrap();
    let seen = pool.map(read_initialized, 0..200u64).unwrap();
    assert_eq!(seen, vec![42; 200]);
    assert_eq!(
        INITIALIZED.load(Ordering::SeqCst),
        0,
        "the initializer ran in the caller"
    );
}

static REPLACED_INITIALIZED: AtomicU64 = AtomicU64::new(0);

fn initialize_replaced() {
    REPLACED_INITIALIZED.store(42, Ordering::SeqCst);
}

fn read_replaced_initialized(_: u64) -> (u32, u64) {
    (
        std::process::id(),
        REPLACED_INITIALIZED.load(Ordering::SeqCst),
    )
}

#[test]
fn a_replacement_process_worker_runs_the_initializer_too() {
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_worker(2)
        .initializer(initialize_replaced)
        .build()
        .unwrap();
    let seen = pool.map(read_replaced_initialized, 0..20u64).unwrap();
    assert!(seen.iter().all(|&(_, v)| v == 42), "{seen:?}");
    let workers = counts(seen.into_iter().map(|(pid, _)| pid).collect::<Vec<_>>());
    assert!(workers.len() >= 10, "{workers:?}");
}

static STORED: AtomicU64 = AtomicU64::new(0);

#[remote]
fn store(value: u64) -> impl Fn() {
    move || STORED.store(value, Ordering::SeqCst)
}

fn read_stored(_: u64) -> u64 {
    STORED.load(Ordering::SeqCst)
}

#[test]
fn a_remote_factory_initializer_runs_in_every_process_worker() {
    let pool = ProcessPool::builder()
        .workers(2)
        .initializer(store(7))
        .build()
        .unwrap();
    assert_eq!(pool.map(read_stored, 0..200u64).unwrap(), vec![7; 200]);
    assert_eq!(pool.apply(read_stored, (0,)).unwrap(), 7);
}

thread_local! {
    static THREAD_INITIALIZED: Cell<u64> = const { Cell::new(0) };
}

fn initialize_thread() {
    THREAD_INITIALIZED.with(|v| v.set(42));
}

fn read_thread_initialized(_: u64) -> u64 {
    THREAD_INITIALIZED.with(Cell::get)
}

#[test]
fn an_initializer_runs_in_every_worker_thread() {
    let pool = ThreadPool::builder()
        .workers(3)
        .max_tasks_per_worker(5)
        .initializer(initialize_thread)
        .build()
        .unwrap();
    let seen = pool.map(read_thread_initialized, 0..60u64).unwrap();
    assert_eq!(seen, vec![42; 60]);
}

static THREAD_STORED: AtomicU64 = AtomicU64::new(0);

#[remote]
fn store_for_threads(value: u64) -> impl Fn() {
    move || THREAD_STORED.store(value, Ordering::SeqCst)
}

fn read_thread_stored(_: u64) -> u64 {
    THREAD_STORED.load(Ordering::SeqCst)
}

#[test]
fn a_remote_factory_initializer_runs_in_a_thread_pool() {
    let pool = ThreadPool::builder()
        .workers(2)
        .initializer(store_for_threads(9))
        .build()
        .unwrap();
    assert_eq!(pool.map(read_thread_stored, 0..50u64).unwrap(), vec![9; 50]);
}

fn initialize_badly() {
    panic!("the initializer fails");
}

fn describe_setup_failure<T: std::fmt::Debug>(result: Result<T, Error>) -> Result<String, String> {
    match &result {
        Err(err) => match err.item_error() {
            Error::Setup { reason, .. } => Ok(reason.clone()),
            _ => Err(format!("{result:?}")),
        },
        Ok(_) => Err(format!("{result:?}")),
    }
}

#[test]
fn a_panicking_initializer_fails_process_items_with_setup() {
    let (map, apply) = within_30_seconds(|| {
        let pool = ProcessPool::builder()
            .workers(2)
            .initializer(initialize_badly)
            .build()
            .unwrap();
        let map = describe_setup_failure(pool.map(square, 0..10u64));
        let apply = describe_setup_failure(pool.apply(square, (3,)));
        (map, apply)
    });
    let reason = map.expect("map: expected Err(Error::Setup)");
    println!("map's Setup reason: {reason}");
    apply.expect("apply: expected Err(Error::Setup)");
}

#[test]
fn a_panicking_initializer_fails_thread_items_with_setup() {
    let (map, apply) = within_30_seconds(|| {
        let pool = ThreadPool::builder()
            .workers(2)
            .initializer(initialize_badly)
            .build()
            .unwrap();
        let map = describe_setup_failure(pool.map(square, 0..10u64));
        let apply = describe_setup_failure(pool.apply(square, (3,)));
        (map, apply)
    });
    map.expect("map: expected Err(Error::Setup)");
    apply.expect("apply: expected Err(Error::Setup)");
}
