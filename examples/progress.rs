//! Progress bars on stderr (feature `progress`): a pool that draws one for
//! each long call, a bar of the caller's own for one call, and `imap` with
//! indicatif's `ProgressIterator`. The results go to stdout, the bars to
//! stderr, and the bars are hidden when stderr is not a terminal.
//!
//! `cargo run --release --example progress --features progress`

use std::time::Duration;

use forkmap::indicatif::{ProgressBar, ProgressFinish, ProgressIterator, ProgressStyle};
use forkmap::ProcessPool;

/// A slow item that fails for multiples of 17.
fn checked_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(40));
    assert!(x % 17 != 0, "{x} is a multiple of 17");
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Every long call of this pool draws a bar: done of total, rate,
    //    time left, and the failures apart.
    let pool = ProcessPool::builder().workers(4).progress(true).build()?;
    let results = pool.map_results(checked_square, 1..=200)?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    println!("map_results: {} values, {failed} failures", 200 - failed);

    // 2. One call's bar, made and styled by the caller.
    let bar = ProgressBar::new(100).with_style(ProgressStyle::with_template(
        "custom {bar:30} {pos}/{len} {msg}",
    )?);
    let quiet = ProcessPool::new(4)?;
    let each = quiet
        .with_progress(bar.clone())
        .map_results(checked_square, 1..=100)?;
    bar.finish();
    println!("with_progress: {} results", each.len());

    // 3. indicatif's own adaptor on imap's iterator: counts results as
    //    they are read (`.progress_count(n)` makes a bar of its own).
    let read = ProgressBar::new(100_000)
        .with_style(ProgressStyle::with_template("imap {bar:30} {pos}/{len}")?)
        .with_finish(ProgressFinish::AndLeave);
    let sum: u64 = quiet
        .imap(|x: u64| x * 2, 0..100_000)
        .progress_with(read)
        .map(|r| r.unwrap_or(0))
        .sum();
    println!("imap + ProgressIterator: sum {sum}");
    Ok(())
}
