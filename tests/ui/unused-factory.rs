#![deny(dead_code)]

use forkmap::remote;

// Never used: reported as a plain function would be.
#[remote]
fn unused(k: u64) -> impl Fn(u64) -> u64 {
    move |x| x + k
}

fn main() {}
