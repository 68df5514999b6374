//! The shared-memory transport seen from outside (issue 14): frames larger
//! than a ring, a ring's pages and the memory limit, a task that scribbles
//! over its worker's rings or dies in the middle of a reply, and what an
//! idle pool costs. The ring's own edges (wrap-around, full and empty, a
//! producer killed mid-write, scribbled memory) are tested beside it, in
//! `runtime/platform/ring.rs`.

mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use forkmap::{Error, Pool, ProcessPool, ThreadPool};
use serde_bytes::ByteBuf;

const BOUND: Duration = Duration::from_secs(60);

/// A buffer of `len` bytes that says which `seed` made it.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + seed) as u8).collect()
}

fn echo_reversed(bytes: ByteBuf) -> ByteBuf {
    let mut bytes = bytes.into_vec();
    bytes.reverse();
    ByteBuf::from(bytes)
}

/// Items and results of 100 KB each through rings of 4 KiB: every frame
/// goes through the socket, in order with the small ones around it.
fn large_values_through_small_rings<P: Pool>(pool: &P) {
    let items: Vec<ByteBuf> = (0..12)
        .map(|i| ByteBuf::from(pattern(i, if i % 3 == 0 { 10 } else { 100_000 })))
        .collect();
    let results = pool.map(echo_reversed, items.clone()).unwrap();
    for (item, result) in items.iter().zip(&results) {
        let mut expected = item.to_vec();
        expected.reverse();
        assert_eq!(result.as_slice(), expected.as_slice());
    }
    // Small calls still work after large ones.
    assert_eq!(pool.apply(|x: u64| x + 1, (1,)).unwrap(), 2);
}

#[test]
fn values_larger_than_the_ring_travel_both_ways() {
    common::within("values larger than the ring", BOUND, || {
        let _alone = common::alone();
        let pool = ProcessPool::builder()
            .workers(2)
            .ring_size(4096)
            .build()
            .unwrap();
        large_values_through_small_rings(&pool);
        let pool = ThreadPool::builder()
            .workers(2)
            .ring_size(4096)
            .build()
            .unwrap();
        large_values_through_small_rings(&pool);
    });
}

fn filled(len: u64) -> ByteBuf {
    ByteBuf::from(pattern(len, len as usize))
}

/// Values of every size around half a ring (the largest message a ring
/// takes), one per chunk, both ways: each goes through the ring or the
/// socket, and none is cut or shifted at the edge.
fn sizes_at_the_ring_edge<P: Pool>(pool: &P, ring: u64) {
    let sizes: Vec<u64> = (ring / 2 - 48..ring / 2 + 24).collect();
    let made = pool.with_chunk_size(1).map(filled, sizes.clone()).unwrap();
    for (value, &len) in made.iter().zip(&sizes) {
        assert_eq!(value.as_slice(), pattern(len, len as usize), "made {len}");
    }
    let lengths = pool.with_chunk_size(1).map(length, made).unwrap();
    assert_eq!(
        lengths,
        sizes.iter().map(|&n| n as usize).collect::<Vec<_>>()
    );
}

#[test]
fn values_at_the_edge_of_a_ring_travel_whole() {
    common::within("values at the ring's edge", BOUND, || {
        let _alone = common::alone();
        for ring in [4096, 8192] {
            let pool = ProcessPool::builder()
                .workers(2)
                .ring_size(ring)
                .build()
                .unwrap();
            sizes_at_the_ring_edge(&pool, ring as u64);
            let pool = ThreadPool::builder()
                .workers(2)
                .ring_size(ring)
                .build()
                .unwrap();
            sizes_at_the_ring_edge(&pool, ring as u64);
        }
    });
}

#[test]
fn a_ring_size_that_is_not_a_power_of_two_in_range_is_refused() {
    for size in [0, 1000, 2048, 4097, 3 << 20, 2 << 30] {
        let error = ProcessPool::builder().ring_size(size).build().unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{size}: {error}");
        assert!(error.to_string().contains("power of two"), "{error}");
    }
}

fn length(bytes: ByteBuf) -> usize {
    bytes.len()
}

/// Items of 24 MiB through rings of 64 MiB under a memory limit of 48 MiB:
/// each worker's rings hold up to 128 MiB of shared pages by the end, which
/// are the pool's, not the task's, and must not count against the limit;
/// the 24 MiB each item decodes into does.
#[test]
fn a_rings_pages_do_not_count_against_the_memory_limit() {
    common::within("ring pages and the memory limit", BOUND, || {
        let _alone = common::alone();
        let pool = ProcessPool::builder()
            .workers(1)
            .ring_size(64 << 20)
            .memory_limit(48 << 20)
            .build()
            .unwrap();
        let items = (0..6).map(|i| ByteBuf::from(vec![i as u8; 24 << 20]));
        let lengths = pool.map(length, items).unwrap();
        assert_eq!(lengths, [24 << 20; 6]);
    });
}

/// Where this process maps its worker's rings: the start of each mapping
/// of a ring's memory file.
fn ring_mappings() -> Vec<usize> {
    let rings = common::mappings("forkmap-ring");
    rings.into_iter().map(|(start, _)| start).collect()
}

/// Offsets of the ring header's two counters (each on a line pair of its
/// own, after the ring's identity).
const HEAD: usize = 128;
const TAIL: usize = 256;

/// Item 5 writes nonsense over the counters of both of its worker's rings,
/// as a task with a stray pointer could, then returns.
fn scribble_over_the_rings(x: u64) -> u64 {
    if x == 5 {
        let rings = ring_mappings();
        assert_eq!(rings.len(), 2, "a worker maps its two rings");
        for start in rings {
            for offset in [HEAD, TAIL] {
                // SAFETY: the word lies in the ring's header, a mapping of
                // this process; writing it is the point of the test (the
                // pool must survive it).
                unsafe { ((start + offset) as *mut u64).write_volatile(0x0bad_0bad_0bad_0bad) };
            }
        }
    }
    x * 2
}

/// Each side keeps its own position and only publishes it, so a scribbled
/// counter is either written over by its owner before the other side reads
/// it (the reply of item 5 arrives) or read as corrupt by the other side
/// (the worker ends, or the pool ends it, and it is replaced with new
/// rings). Whichever way it goes, only item 5 may fail, nothing hangs, and
/// the pool serves on with two workers.
#[test]
fn a_task_that_scribbles_over_its_rings_harms_only_its_item() {
    common::within("a scribbled ring", BOUND, || {
        let _alone = common::alone();
        let pool = ProcessPool::builder()
            .workers(2)
            .chunk_size(1)
            .build()
            .unwrap();
        let results = pool.map_results(scribble_over_the_rings, 0..10).unwrap();
        for (i, result) in results.iter().enumerate() {
            match (i, result) {
                (5, Err(error)) => assert_eq!(error.index(), Some(5), "{error}"),
                (_, Ok(value)) => assert_eq!(*value, 2 * i as u64),
                (_, Err(error)) => panic!("item {i} failed: {error}"),
            }
        }
        assert_eq!(pool.map(|x: u64| x + 1, 0..100).unwrap()[99], 100);
        assert_eq!(common::worker_pids().len(), 2);
    });
}

/// Item 3 writes half of a reply into its worker's rings, as if the worker
/// were killed while writing it (a record word claiming a long message,
/// and part of its bytes, without the counter that would commit it), then
/// kills its worker.
fn die_in_the_middle_of_a_reply(x: u64) -> u64 {
    if x == 3 {
        for start in ring_mappings() {
            let data = start + 4096;
            // SAFETY: the words lie in the ring's data area, a mapping of
            // this process; the counters are left alone.
            unsafe {
                (data as *mut u64).write_volatile(u64::from_le_bytes(*b"\x00\x10\x00\x00msg1"));
                std::ptr::write_bytes((data + 8) as *mut u8, 0xee, 2048);
            }
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    x * 3
}

#[test]
fn a_worker_killed_in_the_middle_of_a_reply_fails_exactly_its_item() {
    common::within("a worker killed mid-reply", BOUND, || {
        let _alone = common::alone();
        let pool = ProcessPool::builder()
            .workers(2)
            .chunk_size(1)
            .build()
            .unwrap();
        let results = pool
            .map_results(die_in_the_middle_of_a_reply, 0..8)
            .unwrap();
        for (i, result) in results.iter().enumerate() {
            match (i, result) {
                (3, Err(Error::WorkerDied { index, .. })) => assert_eq!(*index, 3),
                (3, other) => panic!("item 3: {other:?}"),
                (_, Ok(value)) => assert_eq!(*value, 3 * i as u64),
                (_, Err(error)) => panic!("item {i} failed: {error}"),
            }
        }
        assert_eq!(pool.apply(|x: u64| x * 3, (7,)).unwrap(), 21);
    });
}

/// CPU time of a process (user and system, its threads together), from
/// `/proc/<pid>/stat`, or zero once it is gone.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after
    // the name and state.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

/// The share of one core that `pids` used over `span`.
fn share_of_a_core(pids: &[u32], span: Duration, during: impl FnOnce()) -> f64 {
    let before: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
    let started = Instant::now();
    during();
    let elapsed = started.elapsed().max(span);
    let after: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
    (after - before).as_secs_f64() / elapsed.as_secs_f64()
}

/// An idle pool sleeps: over two seconds the program and its workers use
/// almost no CPU, where a thread that spins, measured the same way, uses
/// most of a core. (Loose bounds: CPU time, not wall time, so a busy
/// machine does not move them much.)
#[test]
fn an_idle_pool_uses_almost_no_cpu() {
    common::within("idle CPU", BOUND, || {
        let _alone = common::alone();
        let pool = ProcessPool::new(2).unwrap();
        // Warm: the workers ran tasks and spun for their next ones.
        for _ in 0..20 {
            assert_eq!(pool.map(|x: u64| x * 2, 0..10_000).unwrap().len(), 10_000);
        }
        let mut pids = common::worker_pids();
        assert_eq!(pids.len(), 2);
        pids.push(std::process::id());
        let span = Duration::from_secs(2);
        let idle = share_of_a_core(&pids, span, || thread::sleep(span));

        let spinning = share_of_a_core(&[std::process::id()], span / 4, || {
            let until = Instant::now() + span / 4;
            thread::spawn(move || while Instant::now() < until {})
                .join()
                .unwrap();
        });
        assert!(
            spinning > 0.5,
            "a spinning thread used {spinning:.3} of a core"
        );
        assert!(
            idle < 0.05,
            "an idle pool used {idle:.3} of a core (a spinning thread: {spinning:.3})"
        );
        drop(pool);
    });
}
