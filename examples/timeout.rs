//! An item that hangs is stopped after a timeout: its worker is killed and
//! replaced, the item comes back as an `Err`, and every other item completes.
//! The timeout is set for the whole pool with the builder, or for some calls
//! with `with_timeout`.
//!
//! `cargo run --release --example timeout` (about 2 s).
use std::time::{Duration, Instant};

use forkmap::{Error, ProcessPool};

/// Sleeps for `ms` milliseconds and returns them.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn main() -> Result<(), Error> {
    let started = Instant::now();
    let pool = ProcessPool::builder()
        .workers(2)
        .timeout(Duration::from_secs(1))
        .build()?;

    // The third item would take an hour.
    for (index, result) in pool.imap(nap, [100, 200, 3_600_000, 150, 50]).enumerate() {
        match result {
            Ok(ms) => println!("item {index}: slept {ms} ms"),
            Err(err) => {
                println!("item {index}: {err}");
                assert!(err.is_timeout());
            }
        }
    }
    println!("all five items came back after {:.1?}", started.elapsed());

    // A stricter timeout for one call, with the same workers.
    let hurried = pool.with_timeout(Duration::from_millis(300));
    let err = hurried.map(nap, [10, 20, 500]).unwrap_err();
    println!("with_timeout(300 ms): {err}");
    assert!(matches!(
        err,
        Error::Incomplete {
            completed: 2,
            failed: 1,
            ..
        }
    ));

    println!("the same pool, next call: {:?}", pool.map(nap, [1, 2, 3])?);
    Ok(())
}
