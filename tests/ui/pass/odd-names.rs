//! Factories whose names or arity come near what the generated code uses:
//! `self_` (whose struct cannot be `Self`), and a closure of eight
//! arguments, the most a pool calls.
#![deny(warnings)]

use forkmap::remote;

#[remote]
fn self_(k: u64) -> impl Fn(u64) -> u64 {
    move |x| x + k
}

#[remote]
fn sum_of_eight(k: u64) -> impl Fn(u64, u64, u64, u64, u64, u64, u64, u64) -> u64 {
    move |a, b, c, d, e, f, g, h| a + b + c + d + e + f + g + h + k
}

fn main() {
    let _: RemoteSelf = self_(1);
    assert_eq!(self_(1).call(2), 3);
    assert_eq!(sum_of_eight(1).call(1, 1, 1, 1, 1, 1, 1, 1), 9);
}
