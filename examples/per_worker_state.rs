//! State that lives in each worker: a `#[remote]` factory builds a costly
//! table once in each worker, before its closure, and an `impl FnMut`
//! closure keeps a count of the items its worker has run. Each worker has
//! its own table and its own count, for the length of one call.
//!
//! `cargo run --release --example per_worker_state`
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use forkmap::{remote, ProcessPool};

/// What one item gives: the worker's pid, when that worker built its table,
/// how many items the worker has run so far in this call, and the answer.
type Answer = (u32, u128, u32, bool);

/// Says whether numbers below `limit` are prime, with a sieve that each
/// worker builds once.
#[remote]
fn is_prime(limit: usize) -> impl FnMut(u64) -> Answer {
    // Runs once per worker per call, not once per item.
    let mut sieve = vec![true; limit];
    sieve[0] = false;
    sieve[1] = false;
    for i in 2..limit {
        if sieve[i] {
            for multiple in (i * i..limit).step_by(i) {
                sieve[multiple] = false;
            }
        }
    }
    let built = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let pid = std::process::id();
    let mut count = 0;
    move |n| {
        count += 1;
        (pid, built, count, sieve[n as usize])
    }
}

fn main() -> Result<(), forkmap::Error> {
    let pool = ProcessPool::new(4)?;
    let numbers: Vec<u64> = (0..40).map(|i| 999_000 + i).collect();
    let answers = pool.map(is_prime(1_000_000), numbers.iter().copied())?;

    let primes: Vec<u64> = numbers
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.3)
        .map(|(n, _)| *n)
        .collect();
    println!("primes from 999000 to 999039: {primes:?}");

    // Per worker: the moments it built its table, and its counts.
    let mut workers: BTreeMap<u32, (Vec<u128>, Vec<u32>)> = BTreeMap::new();
    for &(pid, built, count, _) in &answers {
        let (builds, counts) = workers.entry(pid).or_default();
        if !builds.contains(&built) {
            builds.push(built);
        }
        counts.push(count);
    }
    for (pid, (builds, counts)) in &workers {
        println!(
            "worker {pid}: built its sieve {} time(s), ran {} items, counting {counts:?}",
            builds.len(),
            counts.len()
        );
        assert_eq!(builds.len(), 1);
        // The count went 1, 2, 3, ... over this worker's items.
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().copied().eq(1..=sorted.len() as u32));
    }
    let total: usize = workers.values().map(|(_, counts)| counts.len()).sum();
    println!("{} workers ran {total} items", workers.len());
    assert_eq!(total, numbers.len());
    Ok(())
}
