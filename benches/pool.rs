//! Regression benchmarks of forkmap's hot paths, on a warm pool of two
//! worker processes: tiny tasks through `map` and `imap`, a round trip of
//! `apply`, and a large buffer. `cargo bench --bench pool`; the side-by-side
//! comparison with the machine's limits and Python is
//! `cargo run --release --example compare`.

use std::sync::OnceLock;

use forkmap::ProcessPool;
use serde_bytes::ByteBuf;

fn main() {
    // No other thread exists yet: workers then fork from the fork server.
    forkmap::init().expect("the fork server starts");
    divan::main();
}

fn pool() -> &'static ProcessPool {
    static POOL: OnceLock<ProcessPool> = OnceLock::new();
    POOL.get_or_init(|| ProcessPool::new(2).expect("a pool"))
}

fn double(x: u64) -> u64 {
    x * 2
}

fn length(bytes: ByteBuf) -> usize {
    bytes.len()
}

#[divan::bench(args = [1_000, 100_000])]
fn map_tiny(bencher: divan::Bencher<'_, '_>, items: u64) {
    bencher
        .counter(divan::counter::ItemsCount::new(items))
        .bench(|| pool().map(double, 0..items).expect("map"));
}

#[divan::bench(args = [100_000])]
fn imap_tiny(bencher: divan::Bencher<'_, '_>, items: usize) {
    bencher
        .counter(divan::counter::ItemsCount::new(items))
        .bench(|| {
            pool()
                .imap(double, 0u64..)
                .take(items)
                .map(|result| result.expect("imap"))
                .sum::<u64>()
        });
}

#[divan::bench]
fn apply_round_trip() -> u64 {
    pool().apply(double, (21,)).expect("apply")
}

#[divan::bench(args = [1 << 20, 16 << 20])]
fn payload_byte_buf(bencher: divan::Bencher<'_, '_>, size: usize) {
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .with_inputs(|| ByteBuf::from(vec![7u8; size]))
        .bench_values(|buffer| pool().apply(length, (buffer,)).expect("apply"));
}
