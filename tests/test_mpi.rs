//! `MpiPool` on an MPI job of three ranks: the seed's examples, results in
//! order over 100,000 tiny items, a task's panic, abort, segfault or
//! timeout on a rank costing one item while the pool serves on, a cancelled
//! call, ranks that run another build, rank 0 panicking, and rank 0
//! returning while work is in flight. Every job ends, with the status its
//! scenario expects, within seconds.
//!
//! `harness = false`: `main` runs each scenario as a job of its own, under
//! `mpirun -n 3` (as root, and oversubscribed on a small machine), bounded
//! by `timeout`. Without the `mpi` feature, or without `mpirun`, it says the
//! tests were skipped, and why.

mod common;

#[cfg(not(feature = "mpi"))]
fn main() {
    println!(
        "test_mpi: skipped: forkmap was built without the `mpi` feature \
         (`cargo test --features mpi --test test_mpi` runs these tests, under mpirun)"
    );
}

#[cfg(feature = "mpi")]
fn main() {
    on_mpi::main();
}

#[cfg(feature = "mpi")]
mod on_mpi {
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use forkmap::{remote, Error, MpiPool};

    use super::common;

    /// Scenarios that end the job with status 0.
    const SCENARIOS: &[common::Scenario] = &[
        ("the_seeds_examples", the_seeds_examples),
        ("tiny_items_in_order", tiny_items_in_order),
        ("faults_on_a_rank", faults_on_a_rank),
        ("a_cancelled_call", a_cancelled_call),
        ("pools_rebuilt_fast", pools_rebuilt_fast),
        ("a_return_with_work_in_flight", a_return_with_work_in_flight),
    ];

    /// Scenarios that `main` runs in another way.
    const OTHERS: &[common::Scenario] = &[
        ("another_build", another_build),
        ("rank_0_panics", rank_0_panics),
    ];

    pub(super) fn main() {
        if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
            // A rank of a job: `init` never returns on ranks other than 0.
            forkmap::init().expect("MPI and the fork server start");
            // Rank 0 runs its scenario on its main thread, where a panic
            // ends the job.
            let name = std::env::args().nth(2).expect("a scenario");
            let &(_, scenario) = SCENARIOS
                .iter()
                .chain(OTHERS)
                .find(|(known, _)| *known == name)
                .expect("a known scenario");
            scenario();
            return;
        }
        if Command::new("mpirun").arg("--version").output().is_err() {
            println!(
                "test_mpi: skipped: no `mpirun` on this machine (Debian: apt-get install \
                 openmpi-bin libopenmpi-dev)"
            );
            return;
        }
        for (name, _) in SCENARIOS {
            let output = job(&[(3, &this_binary(), name)]);
            expect(name, &output, true);
            assert!(
                String::from_utf8_lossy(&output.stdout).contains("scenario done"),
                "{name}: rank 0 did not finish: {}",
                describe(&output)
            );
        }
        // Rank 0 is this binary; the other ranks run another program, the
        // `cluster` example: another build, with other `#[remote]`s.
        let cluster = example("cluster");
        let output = job(&[(1, &this_binary(), "another_build"), (2, &cluster, "")]);
        expect("another_build", &output, true);
        // A panic on rank 0 aborts the job, promptly and with a failure.
        let started = Instant::now();
        let output = job(&[(3, &this_binary(), "rank_0_panics")]);
        expect("rank_0_panics", &output, false);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("rank 0 gives up"), "{}", describe(&output));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job took {:?} to end after rank 0 panicked",
            started.elapsed()
        );
    }

    fn this_binary() -> String {
        std::env::current_exe().unwrap().display().to_string()
    }

    /// The binary of an example built beside this test, with the `mpi`
    /// feature (`cargo build --features mpi --example NAME`: `cargo test
    /// --test test_mpi` does not build the examples).
    fn example(name: &str) -> String {
        let deps = std::env::current_exe().unwrap();
        let profile = deps.parent().unwrap().parent().unwrap();
        let path = profile.join("examples").join(name);
        assert!(
            path.exists(),
            "{} is missing: build it with `cargo build --features mpi --example {name}`",
            path.display()
        );
        path.display().to_string()
    }

    /// Runs an MPI job: for each part, that many ranks running that binary,
    /// with that scenario (none for an example). Bounded by `timeout`, since
    /// `mpirun` can ignore SIGTERM.
    fn job(parts: &[(usize, &str, &str)]) -> Output {
        let mut command = Command::new("timeout");
        command.args(["-k", "5", "120", "mpirun", "--oversubscribe"]);
        for (i, (ranks, binary, scenario)) in parts.iter().enumerate() {
            if i > 0 {
                command.arg(":");
            }
            command.args(["-n", &ranks.to_string(), binary]);
            if !scenario.is_empty() {
                command.args([common::SCENARIO, scenario]);
            }
        }
        command
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .expect("mpirun runs")
    }

    fn describe(output: &Output) -> String {
        format!(
            "status {}, stdout: {}, stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    fn expect(name: &str, output: &Output, success: bool) {
        assert_eq!(
            output.status.success(),
            success,
            "{name}: {}",
            describe(output)
        );
        assert_ne!(
            output.status.code(),
            Some(124),
            "{name}: the job hung: {}",
            describe(output)
        );
        println!("test_mpi: {name}: ok");
    }

    #[remote]
    fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
        move |x| x.pow(y)
    }

    fn slow_pow(x: u64, y: u32) -> u64 {
        std::thread::sleep(Duration::from_millis(50));
        x.pow(y)
    }

    fn pool() -> MpiPool {
        MpiPool::builder().workers(2).build().expect("an MpiPool")
    }

    fn the_seeds_examples() {
        let pool = pool();
        assert_eq!(pool.workers(), 4, "two ranks of two workers");
        let squares = pool.map(power_factory(2), 0..10).unwrap();
        assert_eq!(squares, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
        let same = pool.starmap(slow_pow, (0..10).map(|x| (x, 2))).unwrap();
        assert_eq!(squares, same);
        let handles: Vec<_> = (0..10)
            .map(|x| pool.apply_async(slow_pow, (x, 2)))
            .collect();
        let values: Vec<u64> = handles.into_iter().map(|h| h.get().unwrap()).collect();
        assert_eq!(values, squares);
        let doubled: Vec<u64> = pool
            .imap(|x: u64| x * 2, 0..10)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(doubled, (0..10).map(|x| x * 2).collect::<Vec<_>>());
        println!("scenario done");
    }

    fn tiny_items_in_order() {
        let pool = pool();
        let out = pool.map(|x: u64| x * 3, 0..100_000u64).unwrap();
        assert_eq!(out, (0..100_000u64).map(|x| x * 3).collect::<Vec<_>>());
        let mut unordered: Vec<(usize, u64)> = pool
            .imap_unordered(|x: u64| x + 1, 0..10_000u64)
            .collect::<Result<_, _>>()
            .unwrap();
        unordered.sort_unstable();
        assert!(unordered
            .iter()
            .enumerate()
            .all(|(i, &(at, v))| at == i && v == i as u64 + 1));
        println!("scenario done");
    }

    fn faulty(x: u64) -> u64 {
        match x {
            3 => panic!("three is not allowed"),
            5 => std::process::abort(),
            7 => {
                // SAFETY: none: a deliberate segmentation fault.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
                0
            }
            9 => {
                std::thread::sleep(Duration::from_secs(60));
                0
            }
            _ => x,
        }
    }

    fn faults_on_a_rank() {
        let pool = MpiPool::builder()
            .workers(2)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let results: Vec<Result<u64, Error>> = pool.imap(faulty, 0..12u64).collect();
        for (index, result) in results.iter().enumerate() {
            match index {
                3 => assert!(result.as_ref().unwrap_err().is_panic(), "{result:?}"),
                5 | 7 => assert!(result.as_ref().unwrap_err().is_worker_death(), "{result:?}"),
                9 => assert!(result.as_ref().unwrap_err().is_timeout(), "{result:?}"),
                _ => assert_eq!(result.as_ref().ok(), Some(&(index as u64)), "item {index}"),
            }
        }
        let err = pool.map(faulty, [0, 1, 3, 4]).unwrap_err();
        assert_eq!(err.index(), Some(2), "{err}");
        assert_eq!(
            pool.map(|x: u64| x + 1, 0..8).unwrap(),
            (1..9).collect::<Vec<_>>()
        );
        println!("scenario done");
    }

    fn a_cancelled_call() {
        let pool = pool();
        let long = pool.starmap_async(slow_pow, (0..1_000).map(|x| (x, 1)));
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        long.cancel();
        assert_eq!(pool.map(|x: u64| x, 0..4).unwrap(), [0, 1, 2, 3]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the next call waited {:?}",
            started.elapsed()
        );
        // The ranks answer for the cancelled call's chunks they dropped, so
        // that nothing is left to wait for.
        let chunked = pool
            .with_chunk_size(1)
            .starmap_async(slow_pow, (0..1_000).map(|x| (x, 1)));
        std::thread::sleep(Duration::from_millis(200));
        chunked.cancel();
        pool.join();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "join took until {:?}",
            started.elapsed()
        );
        println!("scenario done");
    }

    /// Pools dropped with work in flight and built again at once: a late
    /// reply of a rank's earlier pool never reaches the next one (it used
    /// to, which cost the next pool that rank).
    fn pools_rebuilt_fast() {
        for round in 0..20 {
            let first = pool();
            let taken = first
                .imap(|x: u64| x, 0u64..)
                .take(2000 + 37 * round)
                .count();
            assert_eq!(taken, 2000 + 37 * round);
            drop(first.map_async(|x: u64| x, 0..20_000u64));
            drop(first);
            let done = pool().map(|x: u64| x + 1, 0..2000u64).unwrap();
            assert_eq!(done.len(), 2000, "round {round}");
        }
        println!("scenario done");
    }

    /// `main` returns while a call runs on the ranks: the job ends, at once.
    fn a_return_with_work_in_flight() {
        let pool = pool();
        drop(pool.starmap_async(slow_pow, (0..1_000).map(|x| (x, 1))));
        println!("scenario done");
    }

    fn another_build() {
        match MpiPool::new() {
            Err(Error::Spawn(e)) if e.to_string().contains("another build") => {}
            other => panic!("ranks of another build were not refused: {other:?}"),
        }
        println!("scenario done");
    }

    fn rank_0_panics() {
        let pool = pool();
        assert_eq!(pool.map(|x: u64| x, 0..4).unwrap(), [0, 1, 2, 3]);
        panic!("rank 0 gives up");
    }
}
