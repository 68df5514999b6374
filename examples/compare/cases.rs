//! forkmap, rayon and a serial loop on the cases of the comparison, each
//! measured here, in this run.

use std::time::{Duration, Instant};

use forkmap::{remote, ProcessPool};
use rayon::prelude::*;
use serde_bytes::ByteBuf;

use crate::median;
use crate::processes::{self, CpuTimes};

/// Runs `f` `reps` times after one warm-up run; the median time.
pub(crate) fn timed(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        f();
        times.push(started.elapsed());
    }
    median(&mut times)
}

/// The tiny task.
pub(crate) fn double(x: u64) -> u64 {
    x * 2
}

/// Items per second of `map(x * 2)` over `n` items on `pool`.
pub(crate) fn tiny(pool: &ProcessPool, n: u64, reps: usize) -> f64 {
    let time = timed(reps, || {
        let out = pool.map(double, 0..n).expect("map");
        assert_eq!(out[n as usize - 1], (n - 1) * 2);
    });
    n as f64 / time.as_secs_f64()
}

/// Items per second of `x * 2` over `n` items in a serial loop.
pub(crate) fn serial_tiny(n: u64, reps: usize) -> f64 {
    let time = timed(reps, || {
        let out: Vec<u64> = (0..n).map(|x| std::hint::black_box(double(x))).collect();
        assert_eq!(out[n as usize - 1], (n - 1) * 2);
    });
    n as f64 / time.as_secs_f64()
}

/// The median round trip of `apply_async(f, (x,)).get()` on `pool`, over
/// `rounds` calls after a tenth as many to warm up.
pub(crate) fn latency(pool: &ProcessPool, rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds + rounds / 10 {
        let started = Instant::now();
        let out = pool.apply_async(double, (i as u64,)).get().expect("apply");
        if i >= rounds / 10 {
            times.push(started.elapsed());
        }
        assert_eq!(out, i as u64 * 2);
    }
    median(&mut times)
}

/// About ten microseconds of arithmetic.
pub(crate) fn work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..6_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Times of `n` items of [`work`]: serially, with rayon on every core, and
/// with forkmap on as many workers; and the time of one item.
pub(crate) struct CpuBound {
    pub(crate) serial: Duration,
    pub(crate) rayon: Duration,
    pub(crate) forkmap: Duration,
    pub(crate) per_item: Duration,
}

pub(crate) fn cpu_bound(n: u64, reps: usize) -> CpuBound {
    let items: Vec<u64> = (0..n).collect();
    let expected: Vec<u64> = items.iter().map(|&x| work(x)).collect();
    let serial = timed(reps, || {
        let out: Vec<u64> = items.iter().map(|&x| work(x)).collect();
        assert_eq!(out, expected);
    });
    let rayon = timed(reps, || {
        let out: Vec<u64> = items.par_iter().map(|&x| work(x)).collect();
        assert_eq!(out, expected);
    });
    let pool = ProcessPool::new(rayon::current_num_threads()).expect("a pool");
    let forkmap = timed(reps, || {
        let out = pool.map(work, items.iter().copied()).expect("map");
        assert_eq!(out, expected);
    });
    CpuBound {
        serial,
        rayon,
        forkmap,
        per_item: serial / n as u32,
    }
}

/// The median time from `ProcessPool::new(8)` to the first result back.
pub(crate) fn startup(rounds: usize) -> Duration {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let pool = ProcessPool::new(8).expect("a pool");
        let out = pool.apply(double, (21,)).expect("apply");
        times.push(started.elapsed());
        assert_eq!(out, 42);
        drop(pool);
    }
    median(&mut times)
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn byte_buf_length(bytes: ByteBuf) -> usize {
    bytes.len()
}

/// Bytes per second of `map(len)` over `count` buffers of `size` bytes on
/// 2 workers (making the buffers is not timed): as `Vec<u8>`, which serde
/// treats as a sequence of bytes, and as `serde_bytes::ByteBuf`, which it
/// copies whole.
pub(crate) fn payload(count: usize, size: usize, reps: usize) -> (f64, f64) {
    let pool = ProcessPool::new(2).expect("a pool");
    let mut vec_times = Vec::with_capacity(reps);
    let mut buf_times = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let buffers: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; size]).collect();
        let started = Instant::now();
        let out = pool.map(length, buffers).expect("map");
        let vec_time = started.elapsed();
        assert_eq!(out, vec![size; count]);
        let buffers: Vec<ByteBuf> = (0..count)
            .map(|i| ByteBuf::from(vec![i as u8; size]))
            .collect();
        let started = Instant::now();
        let out = pool.map(byte_buf_length, buffers).expect("map");
        let buf_time = started.elapsed();
        assert_eq!(out, vec![size; count]);
        if rep > 0 {
            vec_times.push(vec_time);
            buf_times.push(buf_time);
        }
    }
    let rate = |times: &mut [Duration]| (count * size) as f64 / median(times).as_secs_f64();
    (rate(&mut vec_times), rate(&mut buf_times))
}

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| {
        std::thread::sleep(Duration::from_secs(1));
        x.pow(y)
    }
}

/// The seed's program: ten tasks sleeping one second on five workers, from
/// creating the pool to the last result. The median of `reps` runs.
pub(crate) fn seed(reps: usize) -> Duration {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let pool = ProcessPool::new(5).expect("a pool");
        let out = pool.map(power_factory(2), 0..10).expect("map");
        times.push(started.elapsed());
        assert_eq!(out, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
    }
    median(&mut times)
}

/// The parent's memory during `imap` over an endless input, and an idle
/// worker's memory of its own.
pub(crate) struct Memory {
    /// This process's resident set after taking `small` and `large` results.
    pub(crate) after_small_kib: u64,
    pub(crate) after_large_kib: u64,
    pub(crate) small: u64,
    pub(crate) large: u64,
    /// The private memory of each idle worker, beyond the pages it shares
    /// with the parent.
    pub(crate) idle_worker_private_kib: Vec<u64>,
}

pub(crate) fn memory(small: u64, large: u64) -> Memory {
    let pool = ProcessPool::new(2).expect("a pool");
    let sum = |n: u64| -> u64 {
        pool.imap(double, 0u64..)
            .take(n as usize)
            .map(|r| r.expect("imap"))
            .sum()
    };
    assert_eq!(sum(small), small * (small - 1));
    let after_small_kib = processes::status_kib("VmRSS");
    assert_eq!(sum(large), large * (large - 1));
    let after_large_kib = processes::status_kib("VmRSS");
    let idle_worker_private_kib = processes::workers()
        .into_iter()
        .filter_map(processes::private_kib)
        .collect();
    Memory {
        after_small_kib,
        after_large_kib,
        small,
        large,
        idle_worker_private_kib,
    }
}

/// The CPU time an idle pool of 2 workers uses, warmed by one call, over
/// `window`: of this process, its fork server and its workers, as a
/// percentage of one core.
pub(crate) fn idle_cpu(window: Duration) -> f64 {
    let pool = ProcessPool::new(2).expect("a pool");
    assert_eq!(pool.map(double, 0..1_000).expect("map").len(), 1_000);
    let family = processes::family(std::process::id());
    let before = CpuTimes::of(&family);
    std::thread::sleep(window);
    CpuTimes::of(&family).percent_since(&before)
}
