//! A task that crashes its worker process on one item, the way a bug in a
//! C library would: that item comes back as an `Err` that names the signal,
//! the other items still run, and the pool replaces the dead worker and keeps
//! serving.
//!
//! `cargo run --release --example crash`
use forkmap::{Death, Error, ProcessPool};

/// Crashes with a segmentation fault on 13, and aborts on 99.
fn fragile(x: u64) -> u64 {
    if x == 13 {
        // SAFETY: not sound, on purpose: writing through a null pointer kills
        // the process that does it with SIGSEGV, which is what this example
        // shows. Only a worker process runs it; the pool's process is not
        // touched.
        unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u64>(), x) };
    }
    if x == 99 {
        std::process::abort();
    }
    x * 10
}

fn main() -> Result<(), Error> {
    let pool = ProcessPool::new(2)?;

    for (index, result) in pool.imap(fragile, [11, 12, 13, 14, 15]).enumerate() {
        match result {
            Ok(value) => println!("item {index}: {value}"),
            Err(err) => {
                println!("item {index}: {err}");
                assert!(matches!(
                    err,
                    Error::WorkerDied {
                        death: Death::Signal(11),
                        ..
                    }
                ));
            }
        }
    }

    let err = pool.apply(fragile, (99,)).unwrap_err();
    println!("apply: {err}");
    assert!(err.is_worker_death());

    // Both dead workers have been replaced.
    println!(
        "the same pool, next call: {:?} on {} workers",
        pool.map(fragile, 0..5)?,
        pool.workers()
    );
    Ok(())
}
