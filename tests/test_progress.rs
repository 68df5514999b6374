//! The `progress` feature: the counts a bar reaches, on every pool, with a
//! hidden draw target. `cargo test --features progress --test test_progress`.

use std::time::Duration;

use forkmap::indicatif::{ProgressBar, ProgressDrawTarget};
use forkmap::{Pool, ProcessPool, SerialPool, ThreadPool};

fn hidden(len: Option<u64>) -> ProgressBar {
    ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
}

fn panics_at_seven(x: u64) -> u64 {
    assert!(x != 7, "seven");
    x
}

fn exits_at_three(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x
}

fn naps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn counts_items_and_failures_apart<P: Pool>(pool: &P) {
    let bar = hidden(None);
    let results = pool
        .with_progress(bar.clone())
        .map_results(panics_at_seven, 0..50u64)
        .unwrap();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(bar.length(), Some(50), "the input's length is the bar's");
    assert_eq!(bar.position(), 50);
    assert_eq!(bar.message(), "1 failed");

    // `map`, `starmap` and `imap_unordered` count the same way.
    let bar = hidden(None);
    let view = pool.with_progress(bar.clone());
    assert!(view.map(panics_at_seven, 0..20u64).is_err());
    assert_eq!(
        view.starmap(|a: u64, b: u64| a + b, [(1, 2), (3, 4)])
            .unwrap(),
        [3, 7]
    );
    assert_eq!(view.imap_unordered(panics_at_seven, 5..10u64).count(), 5);
    assert_eq!(
        bar.length(),
        Some(27),
        "a bar given without a length has its calls' total"
    );
    assert_eq!(bar.position(), 27);
    assert_eq!(bar.message(), "2 failed");

    // A bar given with a length keeps it.
    let bar = hidden(Some(100));
    let view = pool.with_progress(bar.clone());
    assert_eq!(view.map(|x: u64| x, 0..20u64).unwrap().len(), 20);
    assert_eq!(view.map(|x: u64| x, 0..30u64).unwrap().len(), 30);
    assert_eq!((bar.length(), bar.position()), (Some(100), 50));
}

#[test]
fn a_process_pool_s_bar_counts_items_and_failures_apart() {
    counts_items_and_failures_apart(&ProcessPool::new(3).unwrap());
}

#[test]
fn a_thread_pool_s_bar_counts_items_and_failures_apart() {
    counts_items_and_failures_apart(&ThreadPool::new(3).unwrap());
}

#[test]
fn a_serial_pool_s_bar_counts_items_and_failures_apart() {
    counts_items_and_failures_apart(&SerialPool::new());
}

#[test]
fn deaths_and_timeouts_count_as_failures() {
    let pool = ProcessPool::new(2).unwrap();
    let bar = hidden(Some(8));
    let view = pool
        .with_timeout(Duration::from_millis(300))
        .with_progress(bar.clone());
    let exits = view.map_results(exits_at_three, 0..6u64).unwrap();
    let naps = view.map_results(naps, [10, 60_000]).unwrap();
    assert!(exits[3].as_ref().is_err_and(|e| e.is_worker_death()));
    assert!(naps[1].as_ref().is_err_and(|e| e.is_timeout()));
    assert_eq!((bar.position(), bar.message()), (8, "2 failed".to_string()));
}

#[test]
fn an_imap_s_bar_moves_as_results_come_back_over_an_endless_input() {
    let pool = ProcessPool::new(2).unwrap();
    let bar = hidden(None);
    let firsts: Vec<u64> = pool
        .with_progress(bar.clone())
        .imap(|x: u64| x * 2, 0u64..)
        .take(1000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(firsts[999], 1998);
    // At least what was read; the chunks in flight may have come too.
    assert!(bar.position() >= 1000, "{}", bar.position());
    assert_eq!(bar.length(), None, "an endless input has no length");
    assert_eq!(bar.message(), "");
}

#[test]
fn a_pool_s_own_bars_leave_results_as_they_are() {
    // stderr is not a terminal under the test harness: the bars are hidden.
    let pool = ProcessPool::builder()
        .workers(2)
        .progress(true)
        .build()
        .unwrap();
    assert_eq!(pool.map(|x: u64| x + 1, 0..1000).unwrap().len(), 1000);
    assert_eq!(pool.imap(|x: u64| x, 0u64..).take(5).count(), 5);
    assert_eq!(pool.apply(|x: u64| x, (4,)).unwrap(), 4);
    assert_eq!(pool.map_async(|x: u64| x, 0..10).get().unwrap().len(), 10);
    let err = pool.map(panics_at_seven, 0..10u64).unwrap_err();
    assert_eq!(err.index(), Some(7));
}
