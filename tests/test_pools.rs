//! One suite, run against every pool: `ProcessPool`, `ThreadPool` and
//! `SerialPool`. The test bodies are functions generic over `Pool`, as user
//! code that does not care which pool it gets would be; `pool_suite!` makes a
//! module of `#[test]`s calling them for each pool.

mod common;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forkmap::{remote, Error, Pool};

fn square(x: u64) -> u64 {
    x * x
}

fn pow(x: u64, y: u32) -> u64 {
    x.pow(y)
}

fn panics_at_seven(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is unlucky");
    }
    x
}

/// Slow enough that the caller gets back before it is done.
fn slow_increment(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    x + 1
}

fn sleep_one_second(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x
}

fn sleep_thirty_seconds(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(30));
    x
}

/// Leaves a mark that outlives the worker, whichever process it runs in.
fn write_mark(path: String) {
    std::fs::write(path, b"ran").unwrap();
}

/// A path no other test uses.
fn fresh_path(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("forkmap-test-{}-{what}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path.to_str().unwrap().to_owned()
}

#[remote]
fn offset(by: u64) -> impl Fn(u64) -> u64 {
    move |x| x + by
}

#[remote]
fn scaled_pow(scale: u64) -> impl Fn(u64, u32) -> u64 {
    move |x, y| scale * x.pow(y)
}

fn squares(n: u64) -> Vec<u64> {
    (0..n).map(square).collect()
}

/// `items` wrapped so that `pulled` counts how many items were read.
fn counted<I: Iterator<Item = u64> + 'static>(
    items: I,
    pulled: &Arc<AtomicUsize>,
) -> impl Iterator<Item = u64> + 'static {
    let pulled = Arc::clone(pulled);
    items.inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

fn is_closed<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Closed))
}

fn describe<T: std::fmt::Debug>(result: &Result<T, Error>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(e) => format!("Err({e:?})"),
    }
}

// ---- the suite ------------------------------------------------------------

fn map_keeps_input_order_for_100_000_items<P: Pool>(pool: &P) {
    let results = pool.map(square, 0..100_000u64).unwrap();
    assert_eq!(results, squares(100_000));
}

fn map_of_nothing_is_empty<P: Pool>(pool: &P) {
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
}

fn map_of_an_iterator_without_a_known_length<P: Pool>(pool: &P) {
    let odd = (0..2_000u64).filter(|x| x % 2 == 1);
    let expected: Vec<u64> = (0..2_000u64).filter(|x| x % 2 == 1).map(square).collect();
    assert_eq!(pool.map(square, odd).unwrap(), expected);
}

fn starmap_spreads_tuples_into_arguments<P: Pool>(pool: &P) {
    let results = pool.starmap(pow, (0..1_000u64).map(|x| (x, 3))).unwrap();
    assert_eq!(results, (0..1_000u64).map(|x| x.pow(3)).collect::<Vec<_>>());
    let constants = pool.starmap(|| 7u8, [(), (), ()]).unwrap();
    assert_eq!(constants, [7, 7, 7]);
}

fn imap_yields_results_in_input_order<P: Pool>(pool: &P) {
    let results: Vec<u64> = pool
        .imap(square, 0..10_000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, squares(10_000));
}

fn imap_of_nothing_yields_nothing<P: Pool>(pool: &P) {
    assert_eq!(pool.imap(square, Vec::<u64>::new()).count(), 0);
}

fn imap_reads_its_input_only_as_results_are_taken<P: Pool>(pool: &P) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let first: Vec<u64> = pool
        .imap(square, counted(0u64.., &pulled))
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    let read = pulled.load(Ordering::SeqCst);
    assert!(
        (5..1_000).contains(&read),
        "imap read {read} items of an endless input to give 5 results"
    );
    // Dropping the unfinished imap leaves the pool serving.
    assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
}

fn imap_of_an_endless_input_stops_when_the_caller_does<P: Pool>(pool: &P) {
    let results: Vec<u64> = pool
        .imap(square, 0u64..)
        .take(1_000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, squares(1_000));
}

fn imap_takes_a_borrowed_input<P: Pool>(pool: &P) {
    let data: Vec<u64> = (0..100).collect();
    let results: Vec<u64> = pool
        .imap(square, data.iter().copied())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, squares(100));
}

/// Items that borrow from the caller but decode owned, such as `Cow<str>`,
/// need not be `'static`.
fn map_takes_items_that_borrow_but_decode_owned<P: Pool>(pool: &P) {
    let words: Vec<String> = vec!["a".into(), "bb".into(), "ccc".into()];
    let borrowed = words.iter().map(|word| Cow::Borrowed(word.as_str()));
    let lengths = pool.map(|word: Cow<'_, str>| word.len(), borrowed).unwrap();
    assert_eq!(lengths, [1, 2, 3]);
}

fn imap_unordered_gives_every_index_once_with_its_value<P: Pool>(pool: &P) {
    let n = 2_000u64;
    let mut seen = vec![0u32; n as usize];
    for result in pool.imap_unordered(square, 0..n) {
        let (index, value) = result.unwrap();
        assert!(index < n as usize, "index {index} out of range");
        assert_eq!(value, square(index as u64), "value of index {index}");
        seen[index] += 1;
    }
    let wrong: Vec<(usize, u32)> = seen
        .iter()
        .enumerate()
        .filter(|&(_, &times)| times != 1)
        .map(|(index, &times)| (index, times))
        .collect();
    assert!(
        wrong.is_empty(),
        "(index, times seen) not seen once: {wrong:?}"
    );
}

fn imap_unordered_of_an_endless_input_stops_when_the_caller_does<P: Pool>(pool: &P) {
    let results: Vec<(usize, u64)> = pool
        .imap_unordered(square, 0u64..)
        .take(500)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results.len(), 500);
    let indices: HashSet<usize> = results.iter().map(|&(i, _)| i).collect();
    assert_eq!(indices.len(), 500, "an index came twice");
    assert!(results.iter().all(|&(i, v)| v == square(i as u64)));
}

fn map_async_gives_results_in_input_order<P: Pool>(pool: &P) {
    let handle = pool.map_async(square, 0..1_000u64);
    assert_eq!(handle.get().unwrap(), squares(1_000));
}

fn map_async_reads_every_item_before_returning<P: Pool>(pool: &P) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let handle = pool.map_async(square, counted(0..300u64, &pulled));
    assert_eq!(pulled.load(Ordering::SeqCst), 300);
    assert_eq!(handle.get().unwrap(), squares(300));
}

fn starmap_async_gives_results_in_input_order<P: Pool>(pool: &P) {
    let handle = pool.starmap_async(pow, (0..1_000u64).map(|x| (x, 2)));
    assert_eq!(handle.get().unwrap(), squares(1_000));
}

fn apply_runs_one_call<P: Pool>(pool: &P) {
    assert_eq!(pool.apply(pow, (3, 4)).unwrap(), 81);
    assert_eq!(pool.apply(|| 5u8, ()).unwrap(), 5);
}

fn apply_async_handles_resolve_in_any_order<P: Pool>(pool: &P) {
    let handles: Vec<_> = (0..10u64).map(|x| pool.apply_async(pow, (x, 2))).collect();
    let mut values: Vec<u64> = handles
        .into_iter()
        .rev()
        .map(|h| h.get().unwrap())
        .collect();
    values.reverse();
    assert_eq!(values, squares(10));
}

fn apply_async_becomes_ready<P: Pool>(pool: &P) {
    let handle = pool.apply_async(slow_increment, (41,));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.wait_timeout(Duration::from_millis(10)) {
        assert!(Instant::now() < deadline, "not ready after 10 s");
    }
    assert!(handle.is_ready(), "ready after wait_timeout said so");
    assert!(handle.wait_timeout(Duration::ZERO), "stays ready");
    assert_eq!(handle.get().unwrap(), 42);
}

fn a_panic_fails_its_item_only<P: Pool>(pool: &P) {
    let err = pool.map(panics_at_seven, 0..20u64).unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.index(), Some(7));
    assert!(err.to_string().contains("seven is unlucky"), "{err}");

    let results: Vec<Result<u64, Error>> = pool.imap(panics_at_seven, 0..20u64).collect();
    assert_eq!(results.len(), 20);
    for (i, result) in results.iter().enumerate() {
        if i == 7 {
            let err = result.as_ref().unwrap_err();
            assert!(err.is_panic(), "{err}");
            assert_eq!(err.index(), Some(7));
        } else {
            assert_eq!(
                result.as_ref().ok(),
                Some(&(i as u64)),
                "item {i}: {}",
                describe(result)
            );
        }
    }

    let mut ok = 0;
    let mut panicked = Vec::new();
    for result in pool.imap_unordered(panics_at_seven, 0..20u64) {
        match result {
            Ok((i, v)) => {
                assert_eq!(v, i as u64);
                ok += 1;
            }
            Err(e) => {
                assert!(e.is_panic(), "{e}");
                panicked.push(e.index());
            }
        }
    }
    assert_eq!((ok, panicked), (19, vec![Some(7)]));

    let err = pool.map_async(panics_at_seven, 0..20u64).get().unwrap_err();
    assert!(err.is_panic() && err.index() == Some(7), "{err}");
    let err = pool.apply_async(panics_at_seven, (7,)).get().unwrap_err();
    assert!(err.is_panic(), "{err}");
    let err = pool.apply(panics_at_seven, (7,)).unwrap_err();
    assert!(err.is_panic(), "{err}");

    // The pool lives on.
    assert_eq!(pool.map(panics_at_seven, 0..5u64).unwrap(), [0, 1, 2, 3, 4]);
}

fn map_results_gives_every_items_own_result<P: Pool>(pool: &P) {
    let err = pool.map(panics_at_seven, 0..20u64).unwrap_err();
    assert!(err.to_string().contains("map_results"), "{err}");

    let results = pool.map_results(panics_at_seven, 0..20u64).unwrap();
    assert_eq!(results.len(), 20);
    for (i, result) in results.iter().enumerate() {
        match i {
            7 => assert!(
                result
                    .as_ref()
                    .is_err_and(|e| e.is_panic() && e.index() == Some(7)),
                "item 7: {}",
                describe(result)
            ),
            _ => assert_eq!(result.as_ref().ok(), Some(&(i as u64)), "item {i}"),
        }
    }

    let results = pool
        .starmap_results(pow, [(2, 3), (3, 2)].into_iter().chain([(2, 70)]))
        .unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&8));
    assert_eq!(results[1].as_ref().ok(), Some(&9));
    // 2^70 overflows: a debug build panics, a release build wraps to 0.
    assert!(
        results[2].as_ref().is_err_and(Error::is_panic) || results[2].as_ref().ok() == Some(&0)
    );

    let none: Vec<Result<u64, Error>> = pool.map_results(square, Vec::<u64>::new()).unwrap();
    assert!(none.is_empty());
    // An input of unknown length, read as results come back.
    let unknown = pool
        .map_results(panics_at_seven, (0..10u64).filter(|x| x % 2 == 1))
        .unwrap();
    let errors: Vec<_> = unknown
        .iter()
        .filter_map(|r| r.as_ref().err()?.index())
        .collect();
    assert_eq!((unknown.len(), errors), (5, vec![3]));
}

fn with_chunk_size_sets_one_call_s_chunks<P: Pool>(pool: &P) {
    let one_by_one = pool.with_chunk_size(1);
    assert_eq!(one_by_one.map(square, 0..100u64).unwrap(), squares(100));
    assert_eq!(one_by_one.workers(), pool.workers());
    // A chunk of one item: the slow item 0 does not hold up the others,
    // which every other worker runs meanwhile, and one item's result comes
    // as soon as it is done.
    let mut unordered = one_by_one.imap_unordered(slow_increment, 0..4u64);
    let first = unordered.next().unwrap().unwrap();
    assert_eq!(first.1, first.0 as u64 + 1);
    assert_eq!(unordered.count(), 3);
    let large = pool.with_chunk_size(1_000_000);
    assert_eq!(large.map(square, 0..1000u64).unwrap(), squares(1000));
    let zero = pool.with_chunk_size(0).map(square, 0..3u64);
    assert!(matches!(zero, Err(Error::Config(_))), "{}", describe(&zero));
    // The pool's own calls keep its options.
    assert_eq!(pool.map(square, 0..3u64).unwrap(), [0, 1, 4]);
}

fn a_remote_factory_runs<P: Pool>(pool: &P) {
    assert_eq!(
        pool.map(offset(100), 0..5).unwrap(),
        [100, 101, 102, 103, 104]
    );
    let lazily: Vec<u64> = pool
        .imap(offset(1), 0..5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(lazily, [1, 2, 3, 4, 5]);
    assert_eq!(pool.apply(offset(1), (1,)).unwrap(), 2);
    assert_eq!(pool.apply_async(offset(2), (1,)).get().unwrap(), 3);
    assert_eq!(
        pool.starmap(scaled_pow(10), (0..4u64).map(|x| (x, 2)))
            .unwrap(),
        [0, 10, 40, 90]
    );
    assert_eq!(
        pool.map_async(offset(10), 0..3).get().unwrap(),
        [10, 11, 12]
    );
}

fn after_close_every_call_is_refused<P: Pool>(pool: &P) {
    pool.close();
    let map = pool.map(square, 0..3u64);
    assert!(is_closed(&map), "map: {}", describe(&map));
    let starmap = pool.starmap(pow, [(1, 1)]);
    assert!(is_closed(&starmap), "starmap: {}", describe(&starmap));
    let apply = pool.apply(pow, (1, 1));
    assert!(is_closed(&apply), "apply: {}", describe(&apply));
    let each = pool.map_results(square, 0..3u64);
    assert!(is_closed(&each), "map_results: {}", describe(&each));
    let apply_async = pool.apply_async(pow, (1, 1)).get();
    assert!(
        is_closed(&apply_async),
        "apply_async: {}",
        describe(&apply_async)
    );
    let map_async = pool.map_async(square, 0..3u64).get();
    assert!(is_closed(&map_async), "map_async: {}", describe(&map_async));
    let starmap_async = pool.starmap_async(pow, [(1, 1)]).get();
    assert!(
        is_closed(&starmap_async),
        "starmap_async: {}",
        describe(&starmap_async)
    );

    let mut imap = pool.imap(square, 0..3u64);
    let first = imap.next().expect("imap yields Err(Closed) first");
    assert!(is_closed(&first), "imap: {}", describe(&first));
    assert!(imap.next().is_none(), "imap ends after Err(Closed)");

    let mut unordered = pool.imap_unordered(square, 0..3u64);
    let first = unordered
        .next()
        .expect("imap_unordered yields Err(Closed) first");
    assert!(is_closed(&first), "imap_unordered: {}", describe(&first));
    assert!(unordered.next().is_none(), "imap_unordered ends");

    // Closing twice is harmless.
    pool.close();
    assert!(is_closed(&pool.map(square, 0..3u64)));
}

fn close_lets_work_already_handed_over_finish<P: Pool>(pool: &P) {
    let handle = pool.apply_async(slow_increment, (1,));
    let many = pool.map_async(square, 0..100u64);
    pool.close();
    assert_eq!(handle.get().unwrap(), 2);
    assert_eq!(many.get().unwrap(), squares(100));
}

fn join_waits_for_work_handed_over<P: Pool>(pool: &P) {
    let handle = pool.apply_async(slow_increment, (41,));
    pool.join();
    assert!(handle.is_ready(), "join returned before the task had run");
    assert_eq!(handle.get().unwrap(), 42);
    let after = pool.map(square, 0..3u64);
    assert!(is_closed(&after), "map after join: {}", describe(&after));
}

fn after_terminate_calls_are_refused<P: Pool>(pool: &P) {
    assert_eq!(pool.apply(pow, (2, 2)).unwrap(), 4);
    pool.terminate();
    let map = pool.map(square, 0..3u64);
    assert!(is_closed(&map), "map: {}", describe(&map));
    let apply = pool.apply(pow, (1, 1));
    assert!(is_closed(&apply), "apply: {}", describe(&apply));
    let apply_async = pool.apply_async(pow, (1, 1)).get();
    assert!(
        is_closed(&apply_async),
        "apply_async: {}",
        describe(&apply_async)
    );
    let first = pool.imap(square, 0..3u64).next();
    assert!(matches!(first, Some(Err(Error::Closed))), "imap: {first:?}");
}

fn a_dropped_handle_still_runs_its_task<P: Pool>(pool: &P) {
    let path = fresh_path("dropped-handle");
    drop(pool.apply_async(write_mark, (path.clone(),)));
    pool.join();
    let mark = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        mark.ok().as_deref(),
        Some(&b"ran"[..]),
        "the task of a dropped handle did not run before join returned"
    );
}

fn terminate_ends_an_imap_in_progress<P: Pool>(pool: &P) {
    let mut results = pool.imap(square, 0u64..);
    let first: Vec<u64> = results.by_ref().take(3).map(Result::unwrap).collect();
    assert_eq!(first, [0, 1, 4]);
    pool.terminate();
    // What had come in before still comes out, then one `Closed`, then
    // nothing: a bound far above any window shows the input stopped.
    let rest: Vec<Result<u64, Error>> = results.by_ref().take(100_000).collect();
    assert!(rest.len() < 100_000, "the imap went on after terminate");
    let (last, before) = rest.split_last().expect("no Closed after terminate");
    assert!(is_closed(last), "last: {}", describe(last));
    for (i, result) in before.iter().enumerate() {
        assert_eq!(result.as_ref().ok(), Some(&square(i as u64 + 3)));
    }
    assert!(results.next().is_none(), "results after Closed");
}

/// Only for pools that run work apart from the caller (a serial pool has
/// finished `apply_async` by the time it returns).
fn a_handle_is_not_ready_before_its_task_ends<P: Pool>(pool: &P) {
    let handle = pool.apply_async(sleep_one_second, (9,));
    assert!(!handle.is_ready(), "ready at once");
    assert!(
        !handle.wait_timeout(Duration::from_millis(100)),
        "ready after 100 ms"
    );
    let started = Instant::now();
    assert!(handle.wait_timeout(Duration::from_secs(10)));
    assert!(started.elapsed() > Duration::from_millis(300));
    assert_eq!(handle.get().unwrap(), 9);
}

/// Only for pools that run work apart from the caller.
fn terminate_fails_calls_in_flight<P: Pool>(pool: &P) {
    let handle = pool.apply_async(sleep_thirty_seconds, (1,));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    pool.terminate();
    let result = handle.get();
    assert!(is_closed(&result), "in flight: {}", describe(&result));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "terminate and get took {:?}: the 30 s task was waited for",
        started.elapsed()
    );
}

fn map_takes_a_closure_that_captures_nothing<P: Pool>(pool: &P) {
    assert_eq!(
        pool.map(|s: String| s.len(), ["a", "bb", "ccc"].map(String::from))
            .unwrap(),
        [1, 2, 3]
    );
}

fn starmap_takes_functions_of_three_arguments<P: Pool>(pool: &P) {
    let sums = pool.starmap(
        |a: u8, b: u16, c: u32| u64::from(a) + u64::from(b) + u64::from(c),
        [(1, 2, 3), (4, 5, 6)],
    );
    assert_eq!(sums.unwrap(), [6, 15]);
}

fn a_dropped_handle_does_not_disturb_the_next_call<P: Pool>(pool: &P) {
    drop(pool.apply_async(pow, (2, 2)));
    assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
}

// ---- one module per pool --------------------------------------------------

macro_rules! pool_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            pool_suite!(@tests $make;
                map_keeps_input_order_for_100_000_items,
                map_of_nothing_is_empty,
                map_of_an_iterator_without_a_known_length,
                starmap_spreads_tuples_into_arguments,
                imap_yields_results_in_input_order,
                imap_of_nothing_yields_nothing,
                imap_reads_its_input_only_as_results_are_taken,
                imap_of_an_endless_input_stops_when_the_caller_does,
                imap_takes_a_borrowed_input,
                map_takes_items_that_borrow_but_decode_owned,
                imap_unordered_gives_every_index_once_with_its_value,
                imap_unordered_of_an_endless_input_stops_when_the_caller_does,
                map_async_gives_results_in_input_order,
                map_async_reads_every_item_before_returning,
                starmap_async_gives_results_in_input_order,
                apply_runs_one_call,
                apply_async_handles_resolve_in_any_order,
                apply_async_becomes_ready,
                a_panic_fails_its_item_only,
                map_results_gives_every_items_own_result,
                with_chunk_size_sets_one_call_s_chunks,
                a_remote_factory_runs,
                after_close_every_call_is_refused,
                close_lets_work_already_handed_over_finish,
                join_waits_for_work_handed_over,
                after_terminate_calls_are_refused,
                a_dropped_handle_still_runs_its_task,
                terminate_ends_an_imap_in_progress,
                map_takes_a_closure_that_captures_nothing,
                starmap_takes_functions_of_three_arguments,
                a_dropped_handle_does_not_disturb_the_next_call,
            );
        }
    };
    (@tests $make:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                super::common::within(stringify!($test), std::time::Duration::from_secs(60), || {
                    let pool = $make;
                    super::$test(&pool);
                });
            }
        )*
    };
}

pool_suite!(process, forkmap::ProcessPool::new(3).unwrap());
pool_suite!(thread, forkmap::ThreadPool::new(3).unwrap());
pool_suite!(serial, forkmap::SerialPool::new());

// ---- what differs between pools -------------------------------------------

thread_local! {
    /// A global that is not `Sync`: each worker keeps its own.
    static SEEN: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Remembers `x` in this worker's [`SEEN`] and says how many it has seen.
fn remember(x: u64) -> (usize, u32) {
    let seen = SEEN.with(|seen| {
        seen.borrow_mut().push(x);
        seen.borrow().len()
    });
    (seen, std::os::unix::process::parent_id())
}

#[test]
fn a_test_runs_a_process_pool_whose_tasks_use_a_global_that_is_not_sync() {
    // The harness has started threads: the fork server starts all the same.
    forkmap::init().expect("the fork server starts in a #[test]");
    let pool = forkmap::ProcessPool::builder()
        .workers(1)
        .chunk_size(1)
        .build()
        .unwrap();
    let seen = pool.map(remember, 0..5u64).unwrap();
    let counts: Vec<usize> = seen.iter().map(|&(count, _)| count).collect();
    assert_eq!(counts, [1, 2, 3, 4, 5], "the worker keeps its global");
    assert!(
        seen.iter().all(|&(_, forker)| forker != std::process::id()),
        "a worker was forked from the test program: {seen:?}"
    );
    SEEN.with(|seen| assert!(seen.borrow().is_empty(), "the test's own copy"));
}

#[test]
fn workers_is_what_the_pool_was_made_with() {
    assert_eq!(forkmap::ProcessPool::new(3).unwrap().workers(), 3);
    assert_eq!(forkmap::ThreadPool::new(3).unwrap().workers(), 3);
    assert_eq!(forkmap::SerialPool::new().workers(), 1);
    assert_eq!(Pool::workers(&forkmap::ProcessPool::new(1).unwrap()), 1);
}

#[test]
fn zero_workers_is_a_configuration_error() {
    assert!(matches!(
        forkmap::ProcessPool::new(0),
        Err(Error::Config(_))
    ));
    assert!(matches!(forkmap::ThreadPool::new(0), Err(Error::Config(_))));
}

#[test]
fn where_each_pool_runs_its_tasks() {
    fn pid(_: u64) -> u32 {
        std::process::id()
    }
    fn thread(_: u64) -> String {
        format!("{:?}", std::thread::current().id())
    }
    let me = std::process::id();
    let here = thread(0);
    let process = forkmap::ProcessPool::new(2).unwrap();
    assert!(process.map(pid, 0..20).unwrap().iter().all(|&p| p != me));
    let threads = forkmap::ThreadPool::new(2).unwrap();
    assert!(threads.map(pid, 0..20).unwrap().iter().all(|&p| p == me));
    assert!(threads
        .map(thread, 0..20)
        .unwrap()
        .iter()
        .all(|t| *t != here));
    let serial = forkmap::SerialPool::new();
    assert!(serial.map(pid, 0..20).unwrap().iter().all(|&p| p == me));
    assert!(serial
        .map(thread, 0..20)
        .unwrap()
        .iter()
        .all(|t| *t == here));
}

#[test]
fn a_process_pool_handle_is_not_ready_before_its_task_ends() {
    a_handle_is_not_ready_before_its_task_ends(&forkmap::ProcessPool::new(2).unwrap());
}

#[test]
fn a_thread_pool_handle_is_not_ready_before_its_task_ends() {
    a_handle_is_not_ready_before_its_task_ends(&forkmap::ThreadPool::new(2).unwrap());
}

#[test]
fn process_pool_terminate_fails_calls_in_flight() {
    terminate_fails_calls_in_flight(&forkmap::ProcessPool::new(2).unwrap());
}

#[test]
fn thread_pool_terminate_fails_calls_in_flight() {
    terminate_fails_calls_in_flight(&forkmap::ThreadPool::new(2).unwrap());
}

// ---- ProcessPool only (from test_map.rs and test_failures.rs) ------------

#[test]
fn a_pool_is_shared_between_threads() {
    let pool = forkmap::ProcessPool::new(2).unwrap();
    std::thread::scope(|s| {
        let a = s.spawn(|| pool.map(square, 0..1_000u64).unwrap());
        let b = s.spawn(|| pool.starmap(pow, (0..1_000u64).map(|x| (x, 1))).unwrap());
        assert_eq!(
            a.join().unwrap(),
            (0..1_000u64).map(square).collect::<Vec<_>>()
        );
        assert_eq!(b.join().unwrap(), (0..1_000u64).collect::<Vec<_>>());
    });
}

/// Item 0 takes a while (longer than a worker keeps results before sending
/// them); item 1 waits (10 s at most) for the file named by its argument,
/// which the caller creates once it holds item 0's result.
fn wait_for_caller(path: String, index: u64) -> bool {
    if index == 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        return true;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if std::path::Path::new(&path).exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

#[test]
fn a_slow_items_result_comes_back_before_the_rest_of_its_chunk_has_run() {
    let path = std::env::temp_dir()
        .join(format!("forkmap-streaming-{}", std::process::id()))
        .to_string_lossy()
        .into_owned();
    let _ = std::fs::remove_file(&path);
    let pool = forkmap::ProcessPool::builder()
        .workers(1)
        .chunk_size(2)
        .build()
        .unwrap();
    // Tiny items first, on the same worker: they teach it to look at the
    // clock seldom, which must not hold back the slow item's result.
    assert_eq!(pool.map(square, 0..200_000u64).unwrap().len(), 200_000);
    let mut results = pool.imap(
        |(path, index): (String, u64)| wait_for_caller(path, index),
        [(path.clone(), 0), (path.clone(), 1)],
    );
    assert!(results.next().unwrap().unwrap());
    std::fs::write(&path, b"").unwrap();
    let second = results.next().unwrap().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        second,
        "item 0's result only came with item 1's, at the chunk's end"
    );
}

fn slow_at_0_and_2(x: u64) -> u64 {
    if x == 0 || x == 2 {
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    x
}

#[test]
fn a_chunk_does_not_wait_behind_a_slow_item_while_a_worker_is_idle() {
    let pool = forkmap::ProcessPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    // Items 0 and 2 are slow. Item 2 must go to the worker that ran item 1,
    // not wait behind item 0 on the other worker.
    let pids: Vec<(u64, u32)> = pool
        .map(|x: u64| (slow_at_0_and_2(x), std::process::id()), 0..4u64)
        .unwrap();
    assert_eq!(
        pids.iter().map(|&(x, _)| x).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_ne!(
        pids[0].1, pids[2].1,
        "item 2 waited behind item 0 on the same worker"
    );
}

/// Runs a pool of its own inside the worker.
fn nested(x: u64) -> u64 {
    let threads = forkmap::ThreadPool::new(2).unwrap();
    let processes = forkmap::ProcessPool::new(2).unwrap();
    threads.map(|y: u64| y + 1, [x]).unwrap()[0] + processes.apply(|y: u64| y * 10, (x,)).unwrap()
}

#[test]
fn a_task_can_run_pools_of_its_own() {
    let pool = forkmap::ProcessPool::new(2).unwrap();
    let results = pool
        .with_timeout(std::time::Duration::from_secs(20))
        .map(nested, 0..3u64)
        .unwrap();
    assert_eq!(results, [1, 12, 23]);
}
