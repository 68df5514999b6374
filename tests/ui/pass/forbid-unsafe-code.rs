//! A crate that forbids unsafe code can use `#[remote]`: what it generates
//! asks for no exception.
#![forbid(unsafe_code)]
#![deny(warnings)]

use forkmap::remote;

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

fn main() {
    assert_eq!(power_factory(2).call(3), 9);
}
