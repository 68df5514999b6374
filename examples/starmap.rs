//! The blog post's `starmap` version: each tuple is spread into the arguments.
//! `cargo run --release --example starmap` (about 2 s).
use forkmap::ProcessPool;
use std::time::{Duration, Instant};

fn slow_pow(x: u64, y: u32) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x.pow(y)
}

fn main() -> Result<(), forkmap::Error> {
    let started = Instant::now();
    let pool = ProcessPool::new(5)?;
    println!("{:?}", pool.starmap(slow_pow, (0..10).map(|x| (x, 2)))?);
    println!("Elapsed: {:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
