//! A raw job: what plain rsmpi send and receive do, with no library in
//! between. Rank 0 measures a round trip of one `u64` with rank 1, then
//! runs a task farm: it sends batches of items to the other ranks, which
//! double them and send them back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Destination, Equivalence, Source};

use super::{report, Plan, IN_FLIGHT};
use crate::median;

/// Tags of the messages: what rank 0 tells the others to do, and what
/// comes and goes while they do it.
const PING: i32 = 1;
const ECHO: i32 = 2;
const FARM: i32 = 3;
const WORK: i32 = 4;
const RESULT: i32 = 5;
const STOP: i32 = 6;
const EXIT: i32 = 7;

/// Runs this rank's part of a raw job, from MPI's start to its end.
pub(crate) fn job(plan: Plan) {
    let universe = mpi::initialize().expect("MPI starts");
    let world = universe.world();
    if world.rank() == 0 {
        lead(&world, plan);
    } else {
        serve(&world);
    }
}

/// Rank 0: the round trip, then the farm; then every other rank leaves.
fn lead(world: &SimpleCommunicator, plan: Plan) {
    report(
        "raw_latency",
        round_trip(world, plan.round_trips).as_secs_f64(),
    );
    let input: Vec<u64> = (0..plan.items).collect();
    let batch = plan.batch();
    for rank in 1..world.size() {
        world.process_at_rank(rank).send_with_tag(&0u64, FARM);
    }
    let mut times = Vec::with_capacity(plan.reps as usize);
    for rep in 0..=plan.reps {
        let started = Instant::now();
        let out = farm(world, &input, batch);
        if rep > 0 {
            times.push(started.elapsed());
        }
        assert!(
            out.iter().enumerate().all(|(i, &x)| x == 2 * i as u64),
            "the farm's results are wrong"
        );
    }
    report(
        "raw_farm",
        plan.items as f64 / median(&mut times).as_secs_f64(),
    );
    for rank in 1..world.size() {
        let other = world.process_at_rank(rank);
        other.send_with_tag(&0u64, STOP);
        other.send_with_tag(&0u64, EXIT);
    }
}

/// The median round trip of one `u64` to rank 1 and back, over `rounds`
/// after a tenth as many to warm up.
fn round_trip(world: &SimpleCommunicator, rounds: u64) -> Duration {
    let one = world.process_at_rank(1);
    let total = rounds + rounds / 10;
    one.send_with_tag(&total, PING);
    let mut times = Vec::with_capacity(rounds as usize);
    for i in 0..total {
        let started = Instant::now();
        one.send_with_tag(&i, ECHO);
        let (back, _) = one.receive_with_tag::<u64>(ECHO);
        if i >= total - rounds {
            times.push(started.elapsed());
        }
        assert_eq!(back, i, "the round trip's word came back changed");
    }
    median(&mut times)
}

/// Doubles `input` on the other ranks, in batches of `batch` items, each
/// rank holding up to `IN_FLIGHT` batches at once; the results in order.
fn farm(world: &SimpleCommunicator, input: &[u64], batch: usize) -> Vec<u64> {
    let batches: Vec<&[u64]> = input.chunks(batch).collect();
    let mut out = vec![0u64; input.len()];
    mpi::request::scope(|scope| {
        // Immediate sends: rank 0 never waits for a rank to take a batch,
        // so it always takes the results that ranks wait to send.
        let start = |rank: i32, index: usize| {
            let rank = world.process_at_rank(rank);
            (
                index,
                rank.immediate_send_with_tag(scope, batches[index], WORK),
            )
        };
        let mut in_flight: Vec<VecDeque<_>> = (0..world.size()).map(|_| VecDeque::new()).collect();
        let mut next = 0;
        for _ in 0..IN_FLIGHT {
            for rank in 1..world.size() {
                if next < batches.len() {
                    in_flight[rank as usize].push_back(start(rank, next));
                    next += 1;
                }
            }
        }
        for _ in 0..batches.len() {
            let (message, status) = world.any_process().matched_probe_with_tag(RESULT);
            let rank = status.source_rank();
            let (index, request) = in_flight[rank as usize]
                .pop_front()
                .expect("a result answers a batch in flight");
            message.matched_receive_into(&mut out[index * batch..][..batches[index].len()]);
            // The rank received the batch before it answered.
            request.wait();
            if next < batches.len() {
                in_flight[rank as usize].push_back(start(rank, next));
                next += 1;
            }
        }
    });
    out
}

/// Ranks other than 0: wait, without spinning, for what rank 0 asks; do
/// it, until it says to leave.
fn serve(world: &SimpleCommunicator) {
    let lead = world.process_at_rank(0);
    loop {
        let (message, status) = loop {
            match lead.immediate_matched_probe() {
                Some(probed) => break probed,
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        };
        let (count, _) = message.matched_receive::<u64>();
        match status.tag() {
            PING => {
                for _ in 0..count {
                    let (word, _) = lead.receive_with_tag::<u64>(ECHO);
                    lead.send_with_tag(&word, ECHO);
                }
            }
            FARM => double_batches(world),
            _ => return,
        }
    }
}

/// A rank of the farm: receives batches, doubles them and sends them back,
/// until rank 0 says to stop.
fn double_batches(world: &SimpleCommunicator) {
    let lead = world.process_at_rank(0);
    let mut batch: Vec<u64> = Vec::new();
    loop {
        let (message, status) = lead.matched_probe();
        if status.tag() == STOP {
            message.matched_receive::<u64>();
            return;
        }
        let len = status.count(u64::equivalent_datatype()) as usize;
        batch.resize(len, 0);
        message.matched_receive_into(&mut batch[..]);
        for x in &mut batch {
            *x *= 2;
        }
        lead.send_with_tag(&batch[..], RESULT);
    }
}
