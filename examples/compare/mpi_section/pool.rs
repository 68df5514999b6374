//! A pool job: rank 0's side (every other rank serves the pool inside
//! `forkmap::init()`). An `MpiPool` of one worker on each other rank runs
//! the task farm and the latency case of the raw job, then, when the plan
//! says so, the CPU-bound case beside rayon and a serial loop on rank 0,
//! and stays idle a while for the section to watch its CPU time.

use std::time::{Duration, Instant};

use forkmap::MpiPool;
use rayon::prelude::*;

use super::{report, report_idle, Plan, WORKERS_PER_RANK};
use crate::cases::{double, timed, work};
use crate::median;

/// Rank 0's part of a pool job.
pub(crate) fn job(plan: Plan) -> Result<(), forkmap::Error> {
    let pool = MpiPool::builder().workers(WORKERS_PER_RANK).build()?;
    let n = plan.items;
    let farm = timed(plan.reps as usize, || {
        let out = pool.map(double, 0..n).expect("map");
        assert!(out.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));
    });
    report("farm", n as f64 / farm.as_secs_f64());

    let total = plan.round_trips + plan.round_trips / 10;
    let mut times = Vec::with_capacity(plan.round_trips as usize);
    for i in 0..total {
        let started = Instant::now();
        let out = pool.apply_async(double, (i,)).get()?;
        if i >= total - plan.round_trips {
            times.push(started.elapsed());
        }
        assert_eq!(out, 2 * i);
    }
    report("latency", median(&mut times).as_secs_f64());

    if plan.cpu_items > 0 {
        let items: Vec<u64> = (0..plan.cpu_items).collect();
        let expected: Vec<u64> = items.iter().map(|&x| work(x)).collect();
        let serial = timed(1, || {
            let out: Vec<u64> = items.iter().map(|&x| work(x)).collect();
            assert_eq!(out, expected);
        });
        let rayon = timed(1, || {
            let out: Vec<u64> = items.par_iter().map(|&x| work(x)).collect();
            assert_eq!(out, expected);
        });
        let pooled = timed(1, || {
            let out = pool.map(work, items.iter().copied()).expect("map");
            assert_eq!(out, expected);
        });
        report("serial", serial.as_secs_f64());
        report("rayon", rayon.as_secs_f64());
        report("cpu_bound", pooled.as_secs_f64());
    }

    if plan.idle_seconds > 0 {
        report_idle(true);
        std::thread::sleep(Duration::from_secs(plan.idle_seconds));
        report_idle(false);
    }
    Ok(())
}
