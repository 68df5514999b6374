//! The seed post's four parallel versions in one program: a `#[remote]`
//! factory with `map`, `starmap`, `apply_async`, and a closure that captures
//! nothing. Each prints the squares of 0..10 and takes about 2 s: ten tasks
//! of 1 s on five workers.
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
    let t = Instant::now();
    println!("{:?}", pool.map(power_factory(2), 0..10)?);
    println!("Elapsed: {:?}", t.elapsed());
    let t = Instant::now();
    println!("{:?}", pool.starmap(slow_pow, (0..10).map(|x| (x, 2)))?);
    println!("Elapsed: {:?}", t.elapsed());
    let t = Instant::now();
    let handles: Vec<_> = (0..10)
        .map(|x| pool.apply_async(slow_pow, (x, 2)))
        .collect();
    let values: Result<Vec<u64>, _> = handles.into_iter().map(|h| h.get()).collect();
    println!("{:?}", values?);
    println!("Elapsed: {:?}", t.elapsed());
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
