//! A crate that forbids the naming and dead-code lints can use `#[remote]`:
//! what it generates allows nothing they forbid.
#![forbid(non_snake_case, unsafe_code)]

use forkmap::remote;

#[remote]
fn add_k(k: i64) -> impl Fn(i64) -> i64 {
    move |x| x + k
}

fn main() {
    assert_eq!(add_k(2).call(1), 3);
}
