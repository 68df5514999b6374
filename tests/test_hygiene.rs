//! Dropping a pool leaves no worker process, no zombie, no open descriptor
//! and no memory behind. This binary is its own process, so no other test
//! file's pools share its process table; its tests take turns, so neither
//! sees the other's workers. The fork server, started once, stays.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{alone, open_descriptors, resident_kib, within};
use forkmap::ProcessPool;

fn workers() -> HashSet<u32> {
    common::worker_pids().into_iter().collect()
}

/// The workers left, each with its state letter (`R`, `S`, `Z`, ...).
fn workers_with_state() -> Vec<(u32, char)> {
    common::workers()
        .into_iter()
        .map(|p| (p.pid, p.state))
        .collect()
}

fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

fn square_where(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

#[test]
fn dropping_pools_leaves_no_child_and_no_descriptor() {
    let _alone = alone();
    within(
        "dropping_pools_leaves_no_child_and_no_descriptor",
        Duration::from_secs(30),
        dropping_pools,
    );
}

fn dropping_pools() {
    forkmap::init().unwrap();
    let fds_before = open_descriptors();
    assert_eq!(workers(), HashSet::new(), "workers before any pool");
    for _ in 0..20 {
        let pool = ProcessPool::new(4).unwrap();
        let served: HashSet<u32> = pool
            .map(worker_pid, 0..64u64)
            .unwrap()
            .into_iter()
            .collect();
        let alive = workers();
        assert_eq!(alive.len(), 4, "a live pool of 4 has 4 workers: {alive:?}");
        assert!(
            served.is_subset(&alive),
            "results came from {served:?}, workers are {alive:?}"
        );
        // A worker that died mid-call is reaped and replaced, not leaked.
        let _ = pool.apply(|| -> u8 { std::process::exit(1) }, ());
        assert_eq!(workers().len(), 4);
        drop(pool);
        assert_eq!(
            workers(),
            HashSet::new(),
            "workers after the pool was dropped"
        );
    }
    assert_eq!(open_descriptors(), fds_before, "descriptors after 20 pools");
}

/// Creates a pool of 2, maps over a few items, checks the results came
/// from its live workers, and drops it; then checks nothing is left.
fn cycle(round: usize) {
    let pool = ProcessPool::new(2).unwrap();
    let results = pool.map(square_where, 0..6u64).unwrap();
    let alive = workers();
    assert_eq!(
        alive.len(),
        2,
        "round {round}: a live pool of 2 has 2 workers: {alive:?}"
    );
    for (x, (square, pid)) in results.into_iter().enumerate() {
        assert_eq!(square, (x * x) as u64, "round {round}: item {x}");
        assert!(
            alive.contains(&pid),
            "round {round}: item {x} ran in {pid}, workers are {alive:?}"
        );
    }
    drop(pool);
    let left = workers_with_state();
    assert!(
        left.is_empty(),
        "round {round}: processes (pid, state) left after the pool was dropped: {left:?}"
    );
}

const WARM_UP: usize = 100;
const CYCLES: usize = 1_000;
/// Room for the allocator's noise; a leak of a few KiB per pool is past it.
const SLACK_KIB: u64 = 4 * 1024;

#[test]
fn a_thousand_pools_leave_no_child_descriptor_or_memory() {
    let _alone = alone();
    within(
        "a_thousand_pools_leave_no_child_descriptor_or_memory",
        Duration::from_secs(45),
        a_thousand_pools,
    );
}

fn a_thousand_pools() {
    forkmap::init().unwrap();
    assert_eq!(workers(), HashSet::new(), "workers before any pool");
    let fds_before = open_descriptors();
    for round in 0..WARM_UP {
        cycle(round);
    }
    let fds_warm = open_descriptors();
    let rss_warm = resident_kib();

    let started = Instant::now();
    for round in WARM_UP..WARM_UP + CYCLES {
        cycle(round);
    }
    let took = started.elapsed();
    let fds_after = open_descriptors();
    let rss_after = resident_kib();

    println!(
        "{CYCLES} create/map/drop cycles of ProcessPool::new(2): {took:.2?} \
         ({:.2?} each, after {WARM_UP} warm-up cycles)",
        took / CYCLES as u32
    );
    println!(
        "open descriptors: {fds_before} before any pool, {fds_warm} after warm-up, \
         {fds_after} after {CYCLES} more"
    );
    println!(
        "VmRSS: {rss_warm} KiB after warm-up, {rss_after} KiB after {CYCLES} more \
         ({:+} KiB; slack {SLACK_KIB} KiB)",
        rss_after as i64 - rss_warm as i64
    );
    assert_eq!(
        fds_after, fds_before,
        "descriptors after {CYCLES} pools, against before any"
    );
    assert!(
        rss_after <= rss_warm + SLACK_KIB,
        "VmRSS grew from {rss_warm} KiB to {rss_after} KiB over {CYCLES} pools"
    );
}
