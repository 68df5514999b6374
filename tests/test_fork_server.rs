//! With the fork server, a program whose other threads take the locks its
//! tasks take (stdout's, a mutex of its own) creates and uses 50 pools
//! without one deadlock. Without the server, a worker forked while one of
//! those threads held a lock would wait for it forever.
//!
//! `harness = false`: `main` must call `forkmap::init()` before the program
//! has any other thread, which the test harness's threads rule out.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use forkmap::ProcessPool;

/// A lock that the busy threads and the tasks both take.
static SHARED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Takes the locks the busy threads hold, and says who forked this worker.
fn take_the_locks(x: u64) -> (u64, u32) {
    print!("");
    std::io::stdout().flush().unwrap();
    SHARED.lock().unwrap().push(x);
    (x * 2, std::os::unix::process::parent_id())
}

fn main() {
    forkmap::init().expect("the fork server starts while the program has one thread");
    forkmap::init().expect("a second init does nothing");

    common::within(
        "test_fork_server: a worker is deadlocked, or a pool hangs",
        Duration::from_secs(30),
        pools_beside_busy_threads,
    );
}

fn pools_beside_busy_threads() {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut out = std::io::stdout().lock();
                    let _ = out.flush();
                    let mut shared = SHARED.lock().unwrap();
                    shared.push(i);
                    shared.truncate(16);
                    drop(shared);
                    drop(out);
                    i += 1;
                }
            });
        }

        assert!(
            matches!(forkmap::init(), Ok(())),
            "init with the server running does nothing, even with threads"
        );
        let me = std::process::id();
        for round in 0..50 {
            let pool = ProcessPool::new(2).expect("a pool starts");
            let results = pool
                .map(take_the_locks, 0..8u64)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            for (x, (doubled, forker)) in results.into_iter().enumerate() {
                assert_eq!(doubled, x as u64 * 2);
                assert_ne!(
                    forker, me,
                    "a worker was forked by the program, not the server"
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "test_fork_server: 50 pools beside 4 busy threads, no deadlock ({:.2?})",
        started.elapsed()
    );

    // The server killed from outside: pools fork their workers themselves
    // from then on, and an existing pool replaces the workers it lost.
    let before = ProcessPool::new(2).expect("a pool");
    assert_eq!(before.map(|x: u64| x + 1, 0..4).unwrap(), [1, 2, 3, 4]);
    let server = common::child_pids();
    assert_eq!(
        server.len(),
        1,
        "the fork server is this program's one child"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(200));
    let after = ProcessPool::new(2).expect("a pool without the server");
    assert_eq!(after.map(|x: u64| x * 3, 0..4).unwrap(), [0, 3, 6, 9]);
    // Its workers died with the server, between calls: nothing is lost.
    assert_eq!(before.map(|x: u64| x + 1, 0..4).unwrap(), [1, 2, 3, 4]);
    println!("test_fork_server: pools work on after the fork server was killed");
}
