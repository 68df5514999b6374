//! forkmap in an async program: no set-up call under `#[tokio::main]`,
//! whose runtime has started its threads before `main` runs. Handles are
//! awaited without blocking the runtime, and a whole `map` runs on tokio's
//! blocking pool.
//! `cargo run --release --example tokio_main`
use std::sync::Arc;

use forkmap::{remote, ProcessPool};

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

fn slow_pow(x: u64, y: u32) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(200));
    x.pow(y)
}

#[tokio::main]
async fn main() -> Result<(), forkmap::Error> {
    let pool = Arc::new(ProcessPool::new(4)?);

    // Several calls at once, awaited side by side.
    let handles: Vec<_> = (0..4).map(|x| pool.apply_async(slow_pow, (x, 2))).collect();
    let mut squares = Vec::new();
    for handle in handles {
        squares.push(handle.await?);
    }
    println!("awaited: {squares:?}");

    // A blocking call, off the runtime's worker threads.
    let shared = Arc::clone(&pool);
    let cubes = tokio::task::spawn_blocking(move || shared.map(power_factory(3), 0..8u64))
        .await
        .expect("the blocking task runs")?;
    println!("map on the blocking pool: {cubes:?}");
    assert_eq!(squares, [0, 1, 4, 9]);
    assert_eq!(cubes[7], 343);
    Ok(())
}
