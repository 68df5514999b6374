//! The noisiest cases, measured in interleaved rounds (the raw references,
//! then forkmap, then the raw references again, ...) so that a passing
//! load on the machine weighs on both sides: round trips and tiny tasks.

use forkmap::ProcessPool;

use crate::table::Spread;
use crate::{cases, raw, raw_shm};

/// How much each round measures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Round trips of each ping-pong and of forkmap's latency case.
    pub(crate) round_trips: usize,
    /// Batches of 1,024 items through each echo.
    pub(crate) shm_batches: usize,
    pub(crate) pipe_batches: usize,
    /// Items of forkmap's `map(x * 2)`, and how many times it runs.
    pub(crate) tiny_items: u64,
    pub(crate) tiny_reps: usize,
}

/// The figures of every round: seconds for round trips, items per second
/// for echoes and maps.
#[derive(Debug)]
pub(crate) struct Interleaved {
    pub(crate) shm_ping: Spread,
    pub(crate) shm_echo: Spread,
    pub(crate) pipe_ping: Spread,
    pub(crate) pipe_echo: Spread,
    pub(crate) latency: Spread,
    pub(crate) tiny: Spread,
}

/// Runs `rounds` rounds of `sizes`; forkmap's cases run on one warm pool of
/// 2 workers.
pub(crate) fn run(rounds: usize, sizes: Sizes) -> Interleaved {
    let pool = ProcessPool::new(2).expect("a pool");
    let mut figures: [Vec<f64>; 6] = Default::default();
    for round in 1..=rounds {
        eprintln!("  round {round} of {rounds}");
        let [shm_ping, shm_echo, pipe_ping, pipe_echo, latency, tiny] = &mut figures;
        shm_ping.push(raw_shm::ping_pong(sizes.round_trips).as_secs_f64());
        shm_echo.push(raw_shm::ring_echo(sizes.shm_batches));
        pipe_ping.push(raw::ping_pong(sizes.round_trips).as_secs_f64());
        pipe_echo.push(raw::batched_echo(sizes.pipe_batches));
        latency.push(cases::latency(&pool, sizes.round_trips).as_secs_f64());
        tiny.push(cases::tiny(&pool, sizes.tiny_items, sizes.tiny_reps));
    }
    let [shm_ping, shm_echo, pipe_ping, pipe_echo, latency, tiny] = figures.map(|f| Spread::of(&f));
    Interleaved {
        shm_ping,
        shm_echo,
        pipe_ping,
        pipe_echo,
        latency,
        tiny,
    }
}
