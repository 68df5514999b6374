#![deny(unused_must_use)]

use forkmap::remote;

/// Attributes on a factory stay on the function that builds the struct.
#[remote]
#[must_use = "give the factory's value to a pool"]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

fn main() {
    power_factory(2);
}
