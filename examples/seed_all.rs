//! The blog post's four parallel versions in one program, each named as it
//! runs: `map` of a closure made by a `#[remote]` factory (pathos' version),
//! `starmap` and `apply_async` of a plain function (the post's rewrites for
//! `multiprocessing`), and `map` of a closure that captures nothing. Each
//! prints the squares of 0..10 and takes about 2 s: ten tasks of 1 s on five
//! workers.
//!
//! `cargo run --release --example seed_all`

use forkmap::{remote, ProcessPool};
use std::time::{Duration, Instant};

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| {
        std::thread::sleep(Duration::from_secs(1));
        x.pow(y)
    }
}

fn slow_pow(x: u64, y: u32) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    x.pow(y)
}

fn main() -> Result<(), forkmap::Error> {
    let pool = ProcessPool::new(5)?;
    println!("1. map of a closure made by a #[remote] factory (pathos):");
    let t = Instant::now();
    println!("{:?}", pool.map(power_factory(2), 0..10)?);
    println!("Elapsed: {:?}", t.elapsed());
    println!("2. starmap of a plain function:");
    let t = Instant::now();
    println!("{:?}", pool.starmap(slow_pow, (0..10).map(|x| (x, 2)))?);
    println!("Elapsed: {:?}", t.elapsed());
    println!("3. apply_async of a plain function, one handle per item:");
    let t = Instant::now();
    let handles: Vec<_> = (0..10)
        .map(|x| pool.apply_async(slow_pow, (x, 2)))
        .collect();
    let values: Result<Vec<u64>, _> = handles.into_iter().map(|h| h.get()).collect();
    println!("{:?}", values?);
    println!("Elapsed: {:?}", t.elapsed());
    println!("4. map of a closure that captures nothing:");
    let t = Instant::now();
    println!(
        "{:?}",
        pool.map(
            |x: u64| {
                std::thread::sleep(Duration::from_secs(1));
                x * x
            },
            0..10
        )?
    );
    println!("Elapsed: {:?}", t.elapsed());
    Ok(())
}
