//! The blog post's "not parallel" loop: ten squares, one second each, in turn.
//! `cargo run --release --example serial` (about 10 s).
use std::time::{Duration, Instant};

fn square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x.pow(2)
}

fn main() {
    let started = Instant::now();
    let results: Vec<u64> = (0..10).map(square).collect();
    println!("{results:?}");
    println!("Elapsed: {:.6}", started.elapsed().as_secs_f64());
}
