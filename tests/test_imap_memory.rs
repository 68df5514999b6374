//! `imap` over an endless input runs in bounded memory: taking 10^7 results
//! (summed, not stored) must not raise this process's peak resident set much
//! above what taking 10^5 did. An `imap` that buffered its results would hold
//! 80 MB of `u64`s. One test in its own binary, so no other test's memory
//! shows in the peak.

mod common;

use std::time::Instant;

use forkmap::ProcessPool;

/// The most the peak may grow between the two runs.
const GROWTH_BOUND_KB: u64 = 16 * 1024;

/// This process's peak resident set size (`VmHWM`), in kB.
fn peak_rss_kb() -> u64 {
    common::status_kib("VmHWM")
}

/// Sums the first `n` results of doubling an endless input.
fn sum_of_doubled(pool: &ProcessPool, n: usize) -> u64 {
    pool.imap(|x: u64| x * 2, 0u64..)
        .take(n)
        .map(|result| result.unwrap())
        .sum()
}

/// The sum of `2x` over `0..n`.
fn expected(n: usize) -> u64 {
    let n = n as u64;
    n * (n - 1)
}

#[test]
fn imap_over_an_endless_input_runs_in_bounded_memory() {
    let pool = ProcessPool::new(2).unwrap();
    let at_start = peak_rss_kb();

    let started = Instant::now();
    let small = sum_of_doubled(&pool, 100_000);
    let small_time = started.elapsed();
    let after_small = peak_rss_kb();

    let started = Instant::now();
    let large = sum_of_doubled(&pool, 10_000_000);
    let large_time = started.elapsed();
    let after_large = peak_rss_kb();

    println!(
        "VmHWM: {at_start} kB at start, {after_small} kB after 10^5 items \
         ({small_time:.2?}), {after_large} kB after 10^7 items ({large_time:.2?}); \
         growth {} kB (bound {GROWTH_BOUND_KB} kB)",
        after_large.saturating_sub(after_small)
    );
    assert_eq!(small, expected(100_000));
    assert_eq!(large, expected(10_000_000));
    assert!(
        after_large.saturating_sub(after_small) < GROWTH_BOUND_KB,
        "peak RSS grew from {after_small} kB to {after_large} kB over 10^7 items"
    );
    // Nor does a large read-ahead, which would already show after 10^5 items.
    assert!(
        after_large.saturating_sub(at_start) < GROWTH_BOUND_KB,
        "peak RSS grew from {at_start} kB to {after_large} kB over the two runs"
    );

    // The instrument sees buffering: storing the 10^7 results, as a
    // buffering imap would, raises the peak by about 80 MB.
    let stored: Vec<u64> = std::hint::black_box((0..10_000_000u64).map(|x| x * 2).collect());
    let after_storing = peak_rss_kb();
    println!("VmHWM: {after_storing} kB after storing 10^7 u64s");
    assert_eq!(stored.iter().sum::<u64>(), expected(10_000_000));
    assert!(
        after_storing.saturating_sub(after_large) > GROWTH_BOUND_KB,
        "storing 80 MB raised the peak only from {after_large} kB to {after_storing} kB"
    );
}
