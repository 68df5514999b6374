//! The README's main example, the Rust twin of the blog post's pathos
//! program: a closure made by a factory, which Python's multiprocessing
//! cannot pickle, runs in a pool of five worker processes. Nothing needs
//! setting up first. `cargo run --release --example pathos_factory` (about
//! 2 s: ten tasks of 1 s on five workers).
use forkmap::{remote, ProcessPool};
use std::time::{Duration, Instant};

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| {
        std::thread::sleep(Duration::from_secs(1));
        x.pow(y)
    }
}

fn main() -> Result<(), forkmap::Error> {
    let started = Instant::now();
    let square = power_factory(2);
    let pool = ProcessPool::new(5)?;
    println!("{:?}", pool.map(square, 0..10)?);
    println!("Elapsed: {:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
