//! A lint level on a factory reaches its body, and an expected lint is met
//! there, as on a plain function.
#![deny(warnings)]

use forkmap::remote;

#[remote]
#[allow(unused_variables)]
fn quiet(n: u64) -> impl Fn(u64) -> u64 {
    let unused = 5;
    move |x| x + n
}

#[remote]
#[expect(unused_mut)]
fn expected(n: u64) -> impl Fn(u64) -> u64 {
    let mut m = n;
    move |x| x + m
}

#[remote]
#[allow(non_snake_case)]
fn grid(N: u64) -> impl Fn(u64) -> u64 {
    move |x| x * N
}

fn main() {
    assert_eq!(quiet(1).call(1), 2);
    assert_eq!(expected(1).call(1), 2);
    assert_eq!(grid(3).call(2), 6);
}
