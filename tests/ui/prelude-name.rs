use forkmap::remote;

// The struct would be `Result`, hiding the prelude's in this module.
#[remote]
fn result(k: u64) -> impl Fn(u64) -> u64 {
    move |x| x + k
}

fn main() -> Result<(), forkmap::Error> {
    // One mistake, one message: this use adds no error of its own.
    let pool = forkmap::SerialPool::new();
    let _ = pool.map(result(2), 0..3u64);
    Ok(())
}
