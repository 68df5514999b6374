//! The blog post's factory example on a cluster: the pool's workers are processes
//! on the other ranks of an MPI job, and a closure made by a factory runs
//! there, five per rank.
//!
//! `cargo build --release --features mpi --example cluster`, then
//! `mpirun -n 4 target/release/examples/cluster` (on several hosts:
//! `mpirun --hostfile hosts -n 8 ...`). Built without the `mpi` feature, it
//! says so and stops.

#[cfg(feature = "mpi")]
fn main() -> Result<(), forkmap::Error> {
    use forkmap::{remote, MpiPool};
    use std::time::{Duration, Instant};

    #[remote]
    fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
        move |x| {
            std::thread::sleep(Duration::from_millis(200));
            x.pow(y)
        }
    }

    // On every rank but 0 this never returns: the rank serves the pool.
    forkmap::init()?;
    let started = Instant::now();
    let pool = MpiPool::builder().workers(5).build()?;
    let squares = pool.map(power_factory(2), 0..10)?;
    println!("{squares:?}");
    println!(
        "{} workers on the other ranks; elapsed: {:.3} s",
        pool.workers(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(squares, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn main() {
    println!(
        "cluster: built without the `mpi` feature; build it with `--features mpi` and run it \
         with `mpirun -n 4 target/release/examples/cluster`"
    );
}
