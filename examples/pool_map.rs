//! The blog post's `Pool(5).map(square, xs)`: a plain function needs no annotation.
//! `cargo run --release --example pool_map` (about 2 s).
use forkmap::ProcessPool;
use std::time::{Duration, Instant};

fn square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x.pow(2)
}

fn main() -> Result<(), forkmap::Error> {
    let started = Instant::now();
    let pool = ProcessPool::new(5)?;
    println!("{:?}", pool.map(square, 0..10)?);
    println!("Elapsed: {:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
