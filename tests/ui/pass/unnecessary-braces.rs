//! A one-line factory compiles without `unused_braces` (or any other
//! warning) at the user's code.
#![deny(warnings)]

use forkmap::remote;

#[remote]
fn add_k(k: i64) -> impl Fn(i64) -> i64 {
    move |x| x + k
}

fn main() {
    assert_eq!(add_k(2).call(1), 3);
}
