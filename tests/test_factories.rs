//! #[remote] factories: captured values of several types, statements before
//! the closure, and closures of two arguments.

use forkmap::{remote, ProcessPool};
use serde::{Deserialize, Serialize};

#[remote]
fn prefixer(prefix: String) -> impl Fn(u32) -> String {
    move |x| format!("{prefix}{x}")
}

#[remote]
fn weighted(weights: Vec<u64>) -> impl Fn(usize) -> u64 {
    move |i| weights[i] * i as u64
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    slope: i64,
    intercept: i64,
}

#[remote]
fn on_line(line: Line) -> impl Fn(i64) -> i64 {
    move |x| line.slope * x + line.intercept
}

#[remote]
fn affine(scale: u64) -> impl Fn(u64, u64) -> u64 {
    move |x, shift| x * scale + shift
}

#[remote]
fn with_pid_table(size: usize) -> impl Fn(usize) -> (u32, usize) {
    // Runs once per worker per call: the closure sees this worker's table.
    let table: Vec<usize> = (0..size).map(|i| i * 10).collect();
    let pid = std::process::id();
    move |i| (pid, table[i % size])
}

#[test]
fn a_factory_capturing_a_string() {
    let pool = ProcessPool::new(2).unwrap();
    let out = pool.map(prefixer("item-".to_owned()), [1, 2, 3]).unwrap();
    assert_eq!(out, ["item-1", "item-2", "item-3"]);
}

#[test]
fn a_factory_capturing_a_vec() {
    let pool = ProcessPool::new(2).unwrap();
    let out = pool.map(weighted(vec![5, 6, 7, 8]), 0..4).unwrap();
    assert_eq!(out, [0, 6, 14, 24]);
}

#[test]
fn a_factory_capturing_a_user_struct() {
    let pool = ProcessPool::new(2).unwrap();
    let out = pool
        .map(
            on_line(Line {
                slope: -2,
                intercept: 7,
            }),
            -2..3,
        )
        .unwrap();
    assert_eq!(out, [11, 9, 7, 5, 3]);
}

#[test]
fn a_factory_returning_a_two_argument_closure() {
    let pool = ProcessPool::new(2).unwrap();
    let out = pool.starmap(affine(10), (0..5u64).map(|x| (x, 1))).unwrap();
    assert_eq!(out, [1, 11, 21, 31, 41]);
    assert_eq!(pool.apply(affine(3), (4, 5)).unwrap(), 17);
}

#[test]
fn statements_before_the_closure_run_in_each_worker() {
    let pool = ProcessPool::new(2).unwrap();
    let out = pool.map(with_pid_table(4), 0..400).unwrap();
    assert!(out.iter().enumerate().all(|(i, &(_, v))| v == (i % 4) * 10));
    assert!(out.iter().all(|&(pid, _)| pid != std::process::id()));
}

#[test]
fn the_factory_value_also_runs_locally() {
    let closure = affine(2).into_closure();
    assert_eq!(closure(5, 1), 11);
}
