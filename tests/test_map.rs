//! map, starmap, apply and apply_async on a process pool: values, order, arity.

use forkmap::ProcessPool;

fn square(x: u64) -> u64 {
    x * x
}

fn slow_pow(x: u64, y: u32) -> u64 {
    x.pow(y)
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn map_returns_100_000_results_in_input_order() {
    let pool = ProcessPool::new(3).unwrap();
    let results = pool.map(square, 0..100_000u64).unwrap();
    assert_eq!(results.len(), 100_000);
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, &r)| r == (i as u64) * (i as u64)));
}

#[test]
fn map_of_an_iterator_without_a_known_length_keeps_order() {
    let pool = ProcessPool::new(2).unwrap();
    let odd = (0..5_000u64).filter(|x| x % 2 == 1);
    let results = pool.map(square, odd).unwrap();
    let expected: Vec<u64> = (0..5_000u64).filter(|x| x % 2 == 1).map(square).collect();
    assert_eq!(results, expected);
}

#[test]
fn map_runs_in_other_processes() {
    let pool = ProcessPool::new(2).unwrap();
    let pids = pool.map(pid, 0..50u64).unwrap();
    assert!(pids.iter().all(|&p| p != std::process::id()));
}

#[test]
fn map_of_nothing_is_empty() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
}

#[test]
fn map_takes_a_closure_that_captures_nothing() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(
        pool.map(|s: String| s.len(), ["a", "bb", "ccc"].map(String::from))
            .unwrap(),
        [1, 2, 3]
    );
}

#[test]
fn starmap_spreads_each_tuple_into_the_arguments() {
    let pool = ProcessPool::new(2).unwrap();
    let results = pool.starmap(slow_pow, (0..10u64).map(|x| (x, 3))).unwrap();
    assert_eq!(results, (0..10u64).map(|x| x.pow(3)).collect::<Vec<_>>());
}

#[test]
fn starmap_takes_functions_of_three_arguments_and_none() {
    let pool = ProcessPool::new(2).unwrap();
    let sums = pool.starmap(
        |a: u8, b: u16, c: u32| u64::from(a) + u64::from(b) + u64::from(c),
        [(1, 2, 3), (4, 5, 6)],
    );
    assert_eq!(sums.unwrap(), [6, 15]);
    let constants = pool.starmap(|| 7u8, [(), ()]).unwrap();
    assert_eq!(constants, [7, 7]);
}

#[test]
fn apply_async_handles_resolve_in_any_order() {
    let pool = ProcessPool::new(3).unwrap();
    let handles: Vec<_> = (0..10u64)
        .map(|x| pool.apply_async(slow_pow, (x, 2)))
        .collect();
    let mut values: Vec<u64> = handles
        .into_iter()
        .rev()
        .map(|h| h.get().unwrap())
        .collect();
    values.reverse();
    assert_eq!(values, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
}

#[test]
fn apply_runs_one_call() {
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.apply(slow_pow, (3, 4)).unwrap(), 81);
}

#[test]
fn a_dropped_handle_does_not_disturb_the_next_call() {
    let pool = ProcessPool::new(1).unwrap();
    drop(pool.apply_async(slow_pow, (2, 2)));
    assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
}

#[test]
fn a_pool_is_shared_between_threads() {
    let pool = ProcessPool::new(2).unwrap();
    std::thread::scope(|s| {
        let a = s.spawn(|| pool.map(square, 0..1_000u64).unwrap());
        let b = s.spawn(|| {
            pool.starmap(slow_pow, (0..1_000u64).map(|x| (x, 1)))
                .unwrap()
        });
        assert_eq!(
            a.join().unwrap(),
            (0..1_000u64).map(square).collect::<Vec<_>>()
        );
        assert_eq!(b.join().unwrap(), (0..1_000u64).collect::<Vec<_>>());
    });
}

#[test]
fn zero_workers_is_a_configuration_error() {
    let err = ProcessPool::new(0).unwrap_err();
    assert!(matches!(err, forkmap::Error::Config(_)), "{err}");
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
    let pool = ProcessPool::builder()
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
    let pool = ProcessPool::builder()
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
