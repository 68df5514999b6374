//! forkmap's `tracing` events, printed by `tracing-subscriber` on stderr: a
//! span per call (its function, items, chunk size and pool), the workers'
//! start and end at `debug`, a death and a timeout at `warn` with their
//! cause, a replacement at `info`, and each chunk at `trace` (set
//! `RUST_LOG`-style levels in your own subscriber).
//!
//! `cargo run --example tracing --features tracing`

use std::time::Duration;

use forkmap::ProcessPool;
use tracing::Level;

fn exits_at_three(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x * x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn main() -> Result<(), forkmap::Error> {
    tracing_subscriber::fmt()
        .with_max_level(Level::DEBUG)
        .with_writer(std::io::stderr)
        .init();

    let pool = ProcessPool::new(2)?;
    let results = pool.map_results(exits_at_three, 0..6u64)?;
    println!(
        "{} of 6 items gave a value",
        results.iter().filter(|r| r.is_ok()).count()
    );

    let hurried = pool.with_timeout(Duration::from_millis(300));
    let late = hurried.apply(nap, (5_000,)).unwrap_err();
    println!("{late}");
    Ok(())
}
