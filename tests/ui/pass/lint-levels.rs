//! A lint level on a factory reaches its body, and an expected lint is met
//! where the compiler reports it, at the factory (`dead_code`,
//! `missing_docs`) or in its body (`unused_mut`), as on a plain function.
#![deny(warnings, missing_docs)]

use forkmap::remote;

/// Allows what its body does.
#[remote]
#[allow(unused_variables)]
fn quiet(n: u64) -> impl Fn(u64) -> u64 {
    let unused = 5;
    move |x| x + n
}

/// Expects what its body does.
#[remote]
#[expect(unused_mut)]
fn expected(n: u64) -> impl Fn(u64) -> u64 {
    let mut m = n;
    move |x| x + m
}

/// Allows its argument's name.
#[remote]
#[allow(non_snake_case)]
fn grid(N: u64) -> impl Fn(u64) -> u64 {
    move |x| x * N
}

#[remote]
#[expect(missing_docs, reason = "expected of the factory itself")]
pub fn undocumented(n: u64) -> impl Fn(u64) -> u64 {
    move |x| x + n
}

/// Never used, as expected; and its body's `mut` is expected too.
#[remote]
#[expect(dead_code, unused_mut)]
fn unused(n: u64) -> impl Fn(u64) -> u64 {
    let mut m = n;
    move |x| x + m
}

/// A lint level on an argument, under a `cfg_attr`.
#[remote]
fn tolerant(#[cfg_attr(all(), allow(unused_variables))] n: u64) -> impl Fn(u64) -> u64 {
    move |x| x
}

/// Its body names the factory itself: the factory, not the closure.
#[remote]
fn describe(k: u64) -> impl Fn(u64) -> String {
    let me = format!("{:?}", describe(k + 1));
    move |x| format!("{me} {x}")
}

/// A `const fn` factory, whose body need not be `const`.
#[remote]
const fn pow(y: u32) -> impl Fn(u64) -> u64 {
    println!("setting up");
    move |x| x.pow(y)
}

const SQUARE: Pow = pow(2);

/// Never used, as a group of lints expects.
#[remote]
#[expect(unused)]
fn never_used(n: u64) -> impl Fn(u64) -> u64 {
    move |x| x + n
}

/// A local that breaks the naming lint, as expected.
#[remote]
#[expect(non_snake_case)]
fn local_name(n: u64) -> impl Fn(u64) -> u64 {
    let N = n;
    move |x| x + N
}

/// An unused item in its body, as expected.
#[remote]
#[expect(dead_code)]
fn nested_item(n: u64) -> impl Fn(u64) -> u64 {
    fn helper() {}
    move |x| x + n
}

/// A factory whose name breaks the naming lint, allowed.
#[remote]
#[allow(non_snake_case)]
fn Shouting(n: u64) -> impl Fn(u64) -> u64 {
    move |x| x + n
}

fn main() {
    assert_eq!(local_name(1).call(1), 2);
    assert_eq!(nested_item(1).call(1), 2);
    assert_eq!(Shouting(1).call(1), 2);
    assert_eq!(quiet(1).call(1), 2);
    assert_eq!(expected(1).call(1), 2);
    assert_eq!(grid(3).call(2), 6);
    assert_eq!(undocumented(1).call(1), 2);
    assert_eq!(tolerant(1).call(1), 1);
    assert_eq!(SQUARE.call(3), 9);
    assert_eq!(describe(1).call(7), "Describe { k: 2 } 7");
}
