//! The blog post's `apply_async` version: one handle per task, then `get`.
//! `cargo run --release --example apply_async` (about 2 s).
use forkmap::ProcessPool;
use std::time::{Duration, Instant};

fn slow_pow(x: u64, y: u32) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x.pow(y)
}

fn main() -> Result<(), forkmap::Error> {
    let started = Instant::now();
    let pool = ProcessPool::new(5)?;
    let handles: Vec<_> = (0..10)
        .map(|x| pool.apply_async(slow_pow, (x, 2)))
        .collect();
    let results = handles
        .into_iter()
        .map(|h| h.get())
        .collect::<Result<Vec<u64>, _>>()?;
    println!("{results:?}");
    println!("Elapsed: {:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
