//! Factories that must compile without warnings, and run both locally and in
//! a pool.
#![deny(warnings, missing_docs, unreachable_pub, rust_2018_idioms)]

use forkmap::remote;
use serde::{Deserialize, Serialize};

/// Raises to a power.
#[remote]
pub fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

/// A user type that travels (and names that generated code must not capture).
#[derive(Serialize, Deserialize)]
pub struct C {
    scale: f64,
    label: String,
}

/// Another user type, named like the generated code's helpers.
#[derive(Serialize, Deserialize)]
pub struct T(u8);

mod nested {
    use super::{remote, C, T};

    /// Per-worker state: setup before the closure, and an `FnMut` counter.
    #[remote(name = Labeller)]
    pub(crate) fn label_factory(
        config: C,
        mut extra: Vec<f64>,
        prefix: String,
        t: T,
    ) -> impl FnMut(f64) -> (String, f64) + Send + 'static {
        extra.push(1.0);
        let total: f64 = extra.iter().sum();
        let mut count = 0u64;
        move |x| {
            count += 1;
            (
                format!("{prefix}{}{count}{}", config.label, t.0),
                x * config.scale * total,
            )
        }
    }
}

/// No arguments, and a closure of two arguments.
#[remote]
fn adder() -> impl Fn(i32, i32) -> i32 {
    |x, y| x + y
}

/// A closure with no arguments and no result.
#[remote]
fn r#hello(r#type: String) -> impl std::ops::Fn() + 'static {
    move || drop(r#type.clone())
}

/// Through a re-export of forkmap.
mod reexport {
    pub(crate) use forkmap;
}

/// With `crate = ...`, a `return`, and a closure of a user type.
#[remote(crate = crate::reexport::forkmap)]
fn early(flag: bool) -> impl Fn(C) -> f64 {
    let sign = if flag { 1.0 } else { -1.0 };
    return move |c: C| sign * c.scale;
}

/// Compiled out, with everything generated for it: `CompiledOut` below would
/// otherwise be defined twice.
#[remote]
#[cfg(any())]
fn compiled_out(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

/// Not the struct of `compiled_out`.
pub struct CompiledOut;

fn config() -> C {
    C {
        scale: 2.0,
        label: "l".into(),
    }
}

fn main() {
    assert_eq!(power_factory(2).into_closure()(3), 9);
    let mut label = nested::label_factory(config(), vec![1.0], "p".into(), T(7)).into_closure();
    assert_eq!(label(1.0), ("pl17".to_owned(), 4.0));
    assert_eq!(adder().into_closure()(2, 3), 5);
    hello("x".into()).into_closure()();
    assert_eq!(early(false).into_closure()(config()), -2.0);

    /// A factory local to a function.
    #[remote]
    fn local(n: usize) -> impl Fn(usize) -> Vec<usize> {
        move |x| vec![x; n]
    }
    assert_eq!(local(2).into_closure()(1), [1, 1]);

    let pool = forkmap::ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(power_factory(2), 0..4u64).unwrap(), [0, 1, 4, 9]);
    let labeller: nested::Labeller = nested::label_factory(config(), vec![], "p".into(), T(0));
    let labels = pool.map(labeller, [1.0, 2.0, 3.0]).unwrap();
    assert_eq!(labels.len(), 3);
    assert_eq!(labels[2].1, 6.0);
    assert_eq!(pool.starmap(adder(), [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    assert_eq!(pool.map(early(true), [config()]).unwrap(), [2.0]);
    assert_eq!(pool.map(local(3), [7]).unwrap(), [vec![7; 3]]);
}
