//! Every process accounted for, when a task, the program or the user does
//! the worst thing to the pool's processes:
//!
//! - cancelling (dropping an `imap`, `AsyncResult::cancel`) frees the
//!   workers at once, items already in a worker included;
//! - Ctrl-C belongs to the program: with a handler the running call
//!   finishes, without one the program dies and its workers and server go
//!   with it; a task's `kill(0, SIGTERM)` reaches only its own worker;
//! - a child that a task leaves running cannot hide its worker's death, nor
//!   outlive the pool; nothing of the pool's is open in what a task runs;
//! - timeouts count from hand-over: a stopped worker, an argument whose
//!   decoding hangs, and a task that lies on its board about its start time
//!   out; a task that writes half a frame on its
//!   worker's socket, then blocks, fails at once;
//! - tasks can run pools of their own, and an outer timeout ends them;
//! - a process the program forks gets an error from an inherited pool,
//!   harms nothing of the parent's, and makes pools of its own;
//! - the server and workers have names of their own, and a stack overflow
//!   names its task;
//! - a result or an argument over the size limit is its item's error;
//! - a task that closes its worker's bell, or puts another file in its
//!   place, loses nothing: the worker is replaced once it holds no work;
//!   one that tries to cut its board short cannot.
//!
//! `harness = false`: each scenario runs in a process of its own (this
//! binary, run again with the scenario's name), so that it counts only its
//! own processes, reads its own stderr, and can be sent signals.

mod common;

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use forkmap::{remote, Error, ProcessPool, Task, ThreadPool};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const SCENARIOS: &[common::Scenario] = &[
    (
        "a_dropped_imap_frees_the_workers",
        a_dropped_imap_frees_the_workers,
    ),
    (
        "a_cancelled_call_frees_the_workers",
        a_cancelled_call_frees_the_workers,
    ),
    (
        "a_task_kills_its_process_group",
        a_task_kills_its_process_group,
    ),
    (
        "a_grandchild_cannot_hide_a_death",
        a_grandchild_cannot_hide_a_death,
    ),
    (
        "a_task_sees_no_descriptor_of_the_pool",
        a_task_sees_no_descriptor_of_the_pool,
    ),
    ("a_stopped_worker_times_out", a_stopped_worker_times_out),
    ("a_hanging_argument_times_out", a_hanging_argument_times_out),
    (
        "a_task_that_lies_about_its_start_times_out",
        a_task_that_lies_about_its_start_times_out,
    ),
    (
        "half_a_frame_then_a_block_fails_that_item",
        half_a_frame_then_a_block_fails_that_item,
    ),
    ("tasks_run_pools_of_their_own", tasks_run_pools_of_their_own),
    (
        "an_outer_timeout_ends_a_nested_pool",
        an_outer_timeout_ends_a_nested_pool,
    ),
    (
        "a_task_that_closes_every_descriptor",
        a_task_that_closes_every_descriptor,
    ),
    (
        "a_task_that_closes_every_descriptor_before_a_slow_one",
        a_task_that_closes_every_descriptor_before_a_slow_one,
    ),
    (
        "a_task_that_closes_every_descriptor_then_hangs",
        a_task_that_closes_every_descriptor_then_hangs,
    ),
    (
        "a_factory_that_closes_every_descriptor",
        a_factory_that_closes_every_descriptor,
    ),
    (
        "a_task_that_writes_into_descriptors",
        a_task_that_writes_into_descriptors,
    ),
    (
        "a_task_that_truncates_its_board",
        a_task_that_truncates_its_board,
    ),
    (
        "a_task_that_spoils_its_board_then_dies",
        a_task_that_spoils_its_board_then_dies,
    ),
    ("a_task_that_closes_its_bell", a_task_that_closes_its_bell),
    (
        "a_task_that_replaces_its_bell",
        a_task_that_replaces_its_bell,
    ),
    (
        "a_task_that_replaces_its_socket",
        a_task_that_replaces_its_socket,
    ),
    (
        "a_bell_closed_unseen_is_slow_not_stuck",
        a_bell_closed_unseen_is_slow_not_stuck,
    ),
    ("a_forked_caller", a_forked_caller),
    ("names_in_ps", names_in_ps),
    ("values_over_the_limit", values_over_the_limit),
];

/// Scenarios that `main` runs in another way than [`SCENARIOS`].
const OTHERS: &[common::Scenario] = &[
    ("ctrl_c_with_a_handler", ctrl_c_with_a_handler),
    ("ctrl_c_without_a_handler", ctrl_c_without_a_handler),
    ("a_stack_overflow", a_stack_overflow),
];

fn main() {
    if common::run_scenario_if_asked(&[SCENARIOS, OTHERS].concat()) {
        return;
    }
    for (name, _) in SCENARIOS {
        common::run_scenario(name, common::this_binary(), &[]);
    }
    ctrl_c();
    stack_overflow_names_its_task();
}

/// How much longer than a limit something may take on a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);

fn double(x: u64) -> u64 {
    x * 2
}

fn nap_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

// --- 1. Cancelling frees the workers ---------------------------------------

fn a_dropped_imap_frees_the_workers() {
    let pool = ProcessPool::new(2).unwrap();
    let firsts: Vec<u64> = pool
        .imap(|x: u64| nap_ms(2) + x, 0..1_000_000u64)
        .take(3)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(firsts, [2, 3, 4]);
    let started = Instant::now();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let took = started.elapsed();
    assert!(
        took < MARGIN,
        "the next call waited {took:?} behind the dropped one"
    );
}

fn a_cancelled_call_frees_the_workers() {
    let pool = ProcessPool::new(2).unwrap();
    // Long items, in a worker by the time the call is cancelled.
    let long = pool.map_async(nap_ms, [60_000u64; 4]);
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    long.cancel();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let took = started.elapsed();
    assert!(
        took < MARGIN,
        "the next call waited {took:?} behind the cancelled one"
    );
    // Many quick items: the workers stop between them.
    let many = pool.map_async(|x: u64| nap_ms(1) + x, 0..100_000u64);
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    many.cancel();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let took = started.elapsed();
    assert!(
        took < MARGIN,
        "the next call waited {took:?} behind the cancelled one"
    );
    assert_eq!(common::workers().len(), 2, "the pool is at full strength");
    // A dropped handle still runs its task: only `cancel` cancels.
    let path = std::env::temp_dir().join(format!("forkmap-cancel-{}", std::process::id()));
    drop(pool.apply_async(write_mark, (path.display().to_string(),)));
    pool.join();
    assert!(path.exists(), "a dropped handle's task ran");
    std::fs::remove_file(path).unwrap();
}

fn write_mark(path: String) {
    std::fs::write(path, "ran").unwrap();
}

// --- 2. Ctrl-C belongs to the program --------------------------------------

/// Runs the Ctrl-C scenarios as a terminal would: the program in a process
/// group of its own (the foreground group), SIGINT sent to that group.
fn ctrl_c() {
    for (name, survives) in [
        ("ctrl_c_with_a_handler", true),
        ("ctrl_c_without_a_handler", false),
    ] {
        let started = Instant::now();
        let mut program = common::this_binary()
            .args([common::SCENARIO, name])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let group = Pid::from_raw(program.id() as i32);
        let stdout = program.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let ready = lines.next().unwrap().unwrap();
        assert_eq!(ready, "ready", "{name}");
        let below = common::descendants(program.id());
        assert!(
            below.len() >= 3,
            "{name}: a server and two workers: {below:?}"
        );
        // The terminal's Ctrl-C: SIGINT to the foreground process group.
        kill(Pid::from_raw(-group.as_raw()), Signal::SIGINT).unwrap();
        let status = common::within(name, Duration::from_secs(30), move || {
            program.wait().unwrap()
        });
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        if survives {
            assert!(status.success(), "{name}: {status}; printed {rest:?}");
            assert_eq!(rest, ["every result arrived"], "{name}");
        } else {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{name}");
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while below.iter().any(|p| still_running(p.pid, p.started)) {
            assert!(
                Instant::now() < deadline,
                "{name}: the program's server and workers outlived it by 1 s"
            );
            thread::sleep(Duration::from_millis(5));
        }
        println!("{name}: ok ({:.2?})", started.elapsed());
    }
}

fn still_running(pid: u32, started: u64) -> bool {
    common::process(pid)
        .is_some_and(|now| now.started == started && !matches!(now.state, 'Z' | 'X'))
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: i32) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Starts a call of items of 300 ms on 2 workers and says `ready`; the
/// test then sends SIGINT to this program's process group.
fn a_call_under_ctrl_c() -> Vec<u64> {
    let pool = ProcessPool::new(2).unwrap();
    // Started before "ready", so the workers exist when the test looks.
    assert_eq!(pool.map(double, 0..2u64).unwrap(), [0, 2]);
    let handle = pool.map_async(nap_ms, [300u64; 8]);
    println!("ready");
    handle.get().expect("every item of the call")
}

fn ctrl_c_with_a_handler() {
    let handler = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_interrupt),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { nix::sys::signal::sigaction(Signal::SIGINT, &handler) }.unwrap();
    let results = a_call_under_ctrl_c();
    assert_eq!(results, [300; 8]);
    // The signal came while the call ran; the program decided to go on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "no SIGINT came");
        thread::sleep(Duration::from_millis(5));
    }
    println!("every result arrived");
}

fn ctrl_c_without_a_handler() {
    a_call_under_ctrl_c();
    // SIGINT kills the program before the call can end.
    thread::sleep(Duration::from_secs(30));
    panic!("SIGINT did not end the program");
}

fn kill_my_group(x: u64) -> u64 {
    if x == 3 {
        kill(Pid::from_raw(0), Signal::SIGTERM).unwrap();
        thread::sleep(Duration::from_secs(60));
    }
    x
}

fn a_task_kills_its_process_group() {
    let pool = ProcessPool::new(2).unwrap();
    let results: Vec<_> = pool.imap(kill_my_group, 0..6u64).collect();
    for (index, result) in results.iter().enumerate() {
        match index {
            3 => assert!(
                matches!(result, Err(Error::WorkerDied { index: 3, .. })),
                "{result:?}"
            ),
            _ => assert_eq!(result.as_ref().ok(), Some(&(index as u64))),
        }
    }
    // This program lives on, and so does its pool.
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
}

// --- 3. A task's children cannot blind the pool ----------------------------

/// Forks a child that holds everything the worker holds (its channel among
/// it) and sleeps 60 s, then sleeps 30 s itself.
fn leave_a_grandchild(pid_file: String) -> u64 {
    // SAFETY: the child only sleeps and exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            thread::sleep(Duration::from_secs(60));
            // SAFETY: leaves at once, running nothing of the parent's.
            unsafe { nix::libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            std::fs::write(&pid_file, child.to_string()).unwrap();
            thread::sleep(Duration::from_secs(30));
            0
        }
    }
}

fn a_grandchild_cannot_hide_a_death() {
    let pid_file = std::env::temp_dir()
        .join(format!("forkmap-grandchild-{}", std::process::id()))
        .display()
        .to_string();
    let pool = ProcessPool::builder()
        .workers(1)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool
        .apply(leave_a_grandchild, (pid_file.clone(),))
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        took < Duration::from_secs(1) + MARGIN,
        "the timeout was noticed after {took:?}"
    );
    let grandchild: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    std::fs::remove_file(&pid_file).unwrap();
    // Killed with its worker's process group.
    let deadline = Instant::now() + Duration::from_secs(1);
    while common::process(grandchild).is_some_and(|p| !matches!(p.state, 'Z' | 'X')) {
        assert!(
            Instant::now() < deadline,
            "the task's child outlived its worker"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(pool.apply(double, (4,)).unwrap(), 8);
}

/// Starts `sleep 60` and leaves it running.
fn start_a_sleeper(_: u64) -> u32 {
    std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap()
        .id()
}

/// What a program the task runs has open.
fn descriptors_of_a_program(_: u64) -> Vec<String> {
    let out = std::process::Command::new("ls")
        .arg("/proc/self/fd")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn a_task_sees_no_descriptor_of_the_pool() {
    let pool = ProcessPool::new(2).unwrap();
    for seen in pool.map(descriptors_of_a_program, 0..4u64).unwrap() {
        // Standard input, output and error, and `ls`'s own directory.
        let extra: Vec<&String> = seen
            .iter()
            .filter(|fd| !["0", "1", "2", "3"].contains(&fd.as_str()))
            .collect();
        assert!(extra.is_empty(), "a program a task ran holds {seen:?}");
    }
    let sleepers = pool.map(start_a_sleeper, 0..2u64).unwrap();
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(1);
    while sleepers
        .iter()
        .any(|&pid| common::process(pid).is_some_and(|p| !matches!(p.state, 'Z' | 'X')))
    {
        assert!(
            Instant::now() < deadline,
            "what the tasks started outlived the pool"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

// --- 4. Timeouts count from hand-over --------------------------------------

fn one_timed_worker() -> ProcessPool {
    ProcessPool::builder()
        .workers(1)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// Runs `call` and checks that it fails with a timeout of its item 0 within
/// the timeout and a margin, and that the pool then works.
fn times_out(pool: &ProcessPool, what: &str, call: impl FnOnce() -> Result<u64, Error>) {
    let started = Instant::now();
    let err = call().unwrap_err();
    let took = started.elapsed();
    assert!(err.is_timeout(), "{what}: {err:?}");
    assert_eq!(err.index(), Some(0), "{what}: {err}");
    assert!(
        took < Duration::from_secs(1) + MARGIN,
        "{what}: after {took:?}"
    );
    assert_eq!(pool.apply(double, (5,)).unwrap(), 10, "{what}: then");
}

fn a_stopped_worker_times_out() {
    let pool = one_timed_worker();
    assert_eq!(pool.apply(double, (1,)).unwrap(), 2);
    let worker = common::worker_pids()[0];
    kill(Pid::from_raw(worker as i32), Signal::SIGSTOP).unwrap();
    times_out(&pool, "a stopped worker", || pool.apply(double, (2,)));
}

/// An argument whose decoding never ends.
#[derive(Debug, Clone, serde::Serialize)]
struct Endless(u64);

impl<'de> serde::Deserialize<'de> for Endless {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        thread::sleep(Duration::from_secs(60));
        Ok(Endless(value))
    }
}

fn endless(x: Endless) -> u64 {
    x.0
}

fn a_hanging_argument_times_out() {
    let pool = one_timed_worker();
    times_out(&pool, "a hanging argument", || {
        pool.apply(endless, (Endless(1),))
    });
}

/// Where this worker's board is mapped: its first and last address.
fn boards() -> Vec<(usize, usize)> {
    let boards = common::mappings("forkmap-board");
    assert!(!boards.is_empty(), "this worker maps no board");
    boards
}

/// Rewrites every time on its worker's board (the words within a minute
/// of now on the monotonic clock: when its item started) as the end of
/// time, then blocks.
fn claim_to_start_later(_: u64) -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    for (start, end) in boards() {
        for word in (start..end).step_by(8) {
            let word = word as *mut u64;
            // SAFETY: within a mapping this process has, readable and
            // writable (the board), aligned to 8 bytes.
            unsafe {
                if word.read_volatile().abs_diff(now) < 60_000_000_000 {
                    word.write_volatile(u64::MAX);
                }
            }
        }
    }
    thread::sleep(Duration::from_secs(60));
    0
}

/// A task that writes on its board that it started in the future still
/// times out: the board is not believed past what the dispatcher knows,
/// and a chunk of one item may take three timeouts (the worker's
/// initializer, the closure's building, the item) at most.
fn a_task_that_lies_about_its_start_times_out() {
    let pool = one_timed_worker();
    let started = Instant::now();
    let err = pool.apply(claim_to_start_later, (0,)).unwrap_err();
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.index(), Some(0), "{err}");
    assert!(took < Duration::from_secs(3) + MARGIN, "after {took:?}");
    assert_eq!(pool.apply(double, (5,)).unwrap(), 10);
}

/// Writes the start of a frame into every socket it has, then blocks.
fn half_a_frame(_: u64) -> u64 {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if fd > 2 && is_socket {
            // SAFETY: borrowed for one write, and forgotten, not closed.
            let mut socket = unsafe { std::fs::File::from_raw_fd(fd) };
            let _ = socket.write(&[100, 0, 0, 0, 7, 7]);
            std::mem::forget(socket);
        }
    }
    thread::sleep(Duration::from_secs(60));
    0
}

/// Bytes on the worker's socket that no ring message announced break the
/// link's protocol: the item that wrote them fails at once, well within
/// its timeout, and the pool serves on with a new worker.
fn half_a_frame_then_a_block_fails_that_item() {
    let pool = one_timed_worker();
    let started = Instant::now();
    let err = pool.apply(half_a_frame, (0,)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{err}");
    assert_eq!(err.index(), Some(0), "{err}");
    assert!(
        matches!(&err, Error::Codec { reason, .. } if reason.contains("no ring message announced")),
        "{err:?}"
    );
    assert_eq!(pool.apply(double, (5,)).unwrap(), 10);
}

// --- 5. Sabotage is charged to the saboteur --------------------------------

/// Item 5 closes every descriptor from 3 on.
fn close_everything(x: u64) -> u64 {
    if x == 5 {
        // SAFETY: closes descriptors by number, touching no memory.
        unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    }
    x
}

/// Item 5 closes every descriptor from 3 on, and item 7 takes longer than
/// the pool waits for a worker whose link has closed: the worker is ended
/// while it runs item 7, which did nothing wrong.
fn close_everything_before_a_slow_one(x: u64) -> u64 {
    if x == 7 {
        thread::sleep(Duration::from_millis(600));
    }
    close_everything(x)
}

/// Item 5 closes every descriptor from 3 on, then sleeps: its worker lives
/// on without a link, and never replies.
fn close_everything_then_hang(x: u64) -> u64 {
    let x = close_everything(x);
    if x == 5 {
        thread::sleep(Duration::from_secs(5));
    }
    x
}

/// Item 5 writes garbage into descriptors 3 to 64.
fn write_everywhere(x: u64) -> u64 {
    if x == 5 {
        for fd in 3..=64 {
            // SAFETY: writes from a valid buffer; a descriptor that is not
            // open fails, and is left alone.
            unsafe { nix::libc::write(fd, [0xffu8; 64].as_ptr().cast(), 64) };
        }
    }
    x
}

/// Runs `saboteur` over 10 items in one chunk on one worker: item 5 may
/// fail, naming itself, and every other item gives its value. Gives item
/// 5's error, if it failed.
fn only_the_saboteur_fails(saboteur: impl Task<(u64,), Output = u64>, what: &str) -> Option<Error> {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(10)
        .build()
        .unwrap();
    let results: Vec<_> = pool.imap(saboteur, 0..10u64).collect();
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, index as u64, "{what}: item {index}"),
            Err(err) => {
                assert_eq!(index, 5, "{what}: item {index} failed too: {err}");
                assert_eq!(err.index(), Some(5), "{what}: {err}");
            }
        }
    }
    assert_eq!(
        pool.map(double, 0..4u64).unwrap(),
        [0, 2, 4, 6],
        "{what}: then"
    );
    results.into_iter().nth(5).and_then(Result::err)
}

/// Item 5 fills its worker's board (where it posts what it runs) with
/// ones, as a stray write might, then aborts: the pool cannot tell which
/// item the worker ran.
fn spoil_the_board_then_abort(x: u64) -> u64 {
    if x == 5 {
        for (start, end) in boards() {
            // SAFETY: the board's mapping, readable and writable, is this
            // process's own; nothing here holds a reference into it.
            unsafe { std::ptr::write_bytes(start as *mut u8, 0xff, end - start) };
        }
        std::process::abort();
    }
    x
}

fn a_task_that_spoils_its_board_then_dies() {
    only_the_saboteur_fails(spoil_the_board_then_abort, "spoils its board, then aborts");
}

fn a_task_that_closes_every_descriptor() {
    only_the_saboteur_fails(close_everything, "closes every descriptor");
}

fn a_task_that_closes_every_descriptor_before_a_slow_one() {
    only_the_saboteur_fails(
        close_everything_before_a_slow_one,
        "closes every descriptor, before a slow item",
    );
}

fn a_task_that_closes_every_descriptor_then_hangs() {
    let started = Instant::now();
    let err = only_the_saboteur_fails(
        close_everything_then_hang,
        "closes every descriptor, then hangs",
    )
    .expect("item 5 never replies");
    assert!(err.to_string().contains("link to the pool closed"), "{err}");
    // Its worker was ended soon after the link closed, not when it woke.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
}

/// A factory that notes each of its runs in the file at `path`, then
/// closes every descriptor from 3 on and takes longer than the pool waits
/// for a worker whose link has closed.
#[remote]
fn close_everything_setting_up(path: String) -> impl Fn(u64) -> u64 {
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"run\n"))
        .unwrap();
    close_everything(5);
    thread::sleep(Duration::from_millis(400));
    |x| x
}

/// The factory, not an item, closed the link: the chunk fails at once,
/// for one death of its worker, rather than item by item.
fn a_factory_that_closes_every_descriptor() {
    let runs = Scratch::new("factory-runs");
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(10)
        .build()
        .unwrap();
    let results = pool
        .map_results(close_everything_setting_up(runs.0.clone()), 0..10u64)
        .unwrap();
    for (index, result) in results.iter().enumerate() {
        let err = result.as_ref().expect_err("the factory never finished");
        assert_eq!(err.index(), Some(index), "{err}");
        assert!(err.to_string().contains("link to the pool closed"), "{err}");
    }
    let runs = std::fs::read_to_string(&runs.0).unwrap();
    assert_eq!(runs.lines().count(), 1, "the factory ran {runs:?}");
    assert_eq!(pool.map(double, 0..3u64).unwrap(), [0, 2, 4]);
}

fn a_task_that_writes_into_descriptors() {
    only_the_saboteur_fails(write_everywhere, "writes into descriptors 3..64");
}

/// Item 5 tries to cut its worker's board (the page where it says what it
/// runs, which its pool reads) to nothing, through the board's file in
/// `/proc/self/map_files` (which root may open): each process mapping it
/// would die of SIGBUS at its next look, the program included. Gives
/// whether it managed to.
fn truncate_the_board(x: u64) -> bool {
    if x != 5 {
        return false;
    }
    boards().iter().any(|(start, end)| {
        let file = std::fs::File::options()
            .write(true)
            .open(format!("/proc/self/map_files/{start:x}-{end:x}"));
        file.is_ok_and(|file| file.set_len(0).is_ok())
    })
}

/// The board's file is sealed against shrinking: the cut fails, and every
/// item (and the program) goes on.
fn a_task_that_truncates_its_board() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(10)
        .build()
        .unwrap();
    let cut = pool.map(truncate_the_board, 0..10u64).unwrap();
    assert!(!cut.contains(&true), "a task cut its board");
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
}

/// This process's descriptors from 3 on whose file's name in
/// `/proc/self/fd` starts with `kind` (`pipe:`, `socket:`).
fn descriptors_of(kind: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if fd >= 3 && target.to_string_lossy().starts_with(kind) {
            found.push(fd);
        }
    }
    found
}

/// This worker's pipes from descriptor 3 on: its bell (what it writes to
/// when it replies while the dispatcher sleeps) is the only one.
fn pipes() -> Vec<i32> {
    descriptors_of("pipe:")
}

/// Item 0 closes its worker's bell; every item then waits long enough for
/// the dispatcher to sleep. Gives the worker's pid, and whether it found
/// a pipe to close.
fn close_the_bell(x: u64) -> (u64, u32, bool) {
    let found = x == 0 && !pipes().is_empty();
    if x == 0 {
        for fd in pipes() {
            // SAFETY: closes a descriptor by number, touching no memory.
            unsafe { nix::libc::close(fd) };
        }
    }
    thread::sleep(Duration::from_millis(50));
    (x, std::process::id(), found)
}

/// Puts the file at `path`, opened to append, in place of each descriptor
/// in `fds`, as a task that redirects output by number might.
fn put_file_in_place_of(path: &str, fds: Vec<i32>) {
    let file = std::fs::File::options().append(true).open(path).unwrap();
    for fd in fds {
        // SAFETY: `dup2` on two descriptors, touching no memory.
        unsafe { nix::libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&file), fd) };
    }
}

/// Item 0 puts the file at `path` in its worker's bell's place.
#[remote]
fn replace_the_bell(path: String) -> impl Fn(u64) -> (u64, u32, bool) {
    move |x| {
        let found = x == 0 && !pipes().is_empty();
        if x == 0 {
            put_file_in_place_of(&path, pipes());
        }
        thread::sleep(Duration::from_millis(50));
        (x, std::process::id(), found)
    }
}

/// An empty file of this scenario's, removed when dropped.
struct Scratch(String);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("forkmap-{name}-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        Scratch(path.to_string_lossy().into_owned())
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.0).unwrap().len()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pool of one worker, given one item at a time.
fn one_worker_item_by_item() -> ProcessPool {
    ProcessPool::builder()
        .workers(1)
        .chunk_size(1)
        .build()
        .unwrap()
}

/// A worker whose bell a task broke can no longer wake the dispatcher: its
/// replies still arrive, every item succeeds (none was at fault towards
/// the others), and the worker is replaced once it holds no work.
fn a_broken_bell_loses_nothing(saboteur: impl Task<(u64,), Output = (u64, u32, bool)>, what: &str) {
    let pool = one_worker_item_by_item();
    let started = Instant::now();
    let results = pool.map(saboteur, 0..20u64).unwrap();
    let took = started.elapsed();
    assert!(results[0].2, "{what}: item 0 found no bell to break");
    for (index, &(value, _, _)) in results.iter().enumerate() {
        assert_eq!(value, index as u64, "{what}: item {index}");
    }
    let saboteur_pid = results[0].1;
    let pids: HashSet<u32> = results.iter().map(|&(_, pid, _)| pid).collect();
    assert!(
        pids.len() > 1,
        "{what}: the worker whose bell broke was never replaced"
    );
    // Its replacement serves promptly: it hears its own bell.
    let (_, pid, _) = pool.apply(close_the_bell, (1,)).unwrap();
    assert_ne!(pid, saboteur_pid, "{what}: the same worker served on");
    println!(
        "{what}: 20 items of 50 ms in {took:.2?}, {} workers",
        pids.len()
    );
}

fn a_task_that_closes_its_bell() {
    a_broken_bell_loses_nothing(close_the_bell, "closes its bell");
}

fn a_task_that_replaces_its_bell() {
    let file = Scratch::new("bell");
    a_broken_bell_loses_nothing(
        replace_the_bell(file.0.clone()),
        "puts a file in its bell's place",
    );
    assert_eq!(file.len(), 0, "the worker rang into the task's file");
}

/// This worker's sockets from descriptor 3 on: its link's is the only one.
fn sockets() -> Vec<i32> {
    descriptors_of("socket:")
}

/// Item 0 connects to the socket at `path` and puts its connection in its
/// worker's socket's place, then returns a value too large for the
/// worker's ring, which goes through the socket.
#[remote]
fn replace_the_socket(path: String) -> impl Fn(u64) -> Vec<u8> {
    move |x| {
        if x != 0 {
            return vec![x as u8];
        }
        let found = sockets();
        assert!(!found.is_empty(), "no socket to replace");
        let theirs = std::os::unix::net::UnixStream::connect(&path).unwrap();
        for fd in found {
            // SAFETY: `dup2` on two descriptors, touching no memory.
            unsafe { nix::libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&theirs), fd) };
        }
        vec![0; 768 << 10]
    }
}

/// The worker's socket is replaced by a connection of the task's: the
/// worker sends nothing into it, and only that task's item may fail.
fn a_task_that_replaces_its_socket() {
    let path = std::env::temp_dir().join(format!("forkmap-socket-{}", std::process::id()));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let received = thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut connection, &mut bytes).unwrap();
        bytes.len()
    });
    let pool = one_worker_item_by_item();
    let task = replace_the_socket(path.to_string_lossy().into_owned());
    let results = pool.map_results(task, 0..5u64).unwrap();
    for (index, result) in results.iter().enumerate().skip(1) {
        assert_eq!(result.as_ref().unwrap()[..], [index as u8], "item {index}");
    }
    assert_eq!(pool.map(double, 0..3u64).unwrap(), [0, 2, 4]);
    // Every copy of the connection is gone with the pool's workers.
    drop(pool);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        received.join().unwrap(),
        0,
        "the worker sent a frame to the task's connection"
    );
}

/// Item 0 forks a child that keeps a copy of every descriptor for a minute,
/// then closes its worker's bell: the pool cannot see that the bell is
/// gone, since the child's copy keeps its pipe open. Every item waits
/// long enough for the dispatcher to sleep.
fn close_the_bell_behind_a_child(x: u64) -> u64 {
    if x == 0 {
        // SAFETY: the child only sleeps and exits, calling no code that a
        // lock held by another thread at the fork could block.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                thread::sleep(Duration::from_secs(60));
                // SAFETY: leaves at once, running no destructor of the
                // worker's.
                unsafe { nix::libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { .. } => {}
        }
        for fd in pipes() {
            // SAFETY: closes a descriptor by number, touching no memory.
            unsafe { nix::libc::close(fd) };
        }
    }
    thread::sleep(Duration::from_millis(50));
    x
}

/// A bell that cannot ring and does not say so: the dispatcher looks at
/// every link at least once a second, so the replies still come, a second
/// late at most each, and nothing hangs.
fn a_bell_closed_unseen_is_slow_not_stuck() {
    let pool = one_worker_item_by_item();
    let started = Instant::now();
    assert_eq!(
        pool.map(close_the_bell_behind_a_child, 0..4u64).unwrap(),
        [0, 1, 2, 3]
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4) + MARGIN,
        "4 items took {took:?}"
    );
    println!("an unseen broken bell: 4 items of 50 ms in {took:.2?}");
}

// --- 6. Nested pools --------------------------------------------------------

fn nested_maps(x: u64) -> u64 {
    let processes = ProcessPool::new(2).expect("a nested process pool");
    let threads = ThreadPool::new(2).expect("a nested thread pool");
    let a: u64 = processes.map(double, 0..x).unwrap().into_iter().sum();
    let b: u64 = threads.map(double, 0..x).unwrap().into_iter().sum();
    a + b
}

fn tasks_run_pools_of_their_own() {
    let other = ProcessPool::new(2).unwrap();
    let pool = ProcessPool::new(3).unwrap();
    let sums = pool.map(nested_maps, 1..7u64).unwrap();
    let expected: Vec<u64> = (1..7u64).map(|x| 2 * x * (x - 1)).collect();
    assert_eq!(sums, expected);
    assert_eq!(other.map(double, 0..3u64).unwrap(), [0, 2, 4]);
}

fn nested_forever(_: u64) -> u64 {
    let nested = ProcessPool::new(2).unwrap();
    nested
        .map(nap_ms, [60_000u64; 2])
        .unwrap()
        .into_iter()
        .sum()
}

fn an_outer_timeout_ends_a_nested_pool() {
    let pool = one_timed_worker();
    times_out(&pool, "an outer timeout", || {
        pool.apply(nested_forever, (0,))
    });
    // Only the outer pool's worker is left below this program.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let workers: Vec<_> = common::descendants(std::process::id())
            .into_iter()
            .filter(|p| p.name() == "forkmap-worker" && !matches!(p.state, 'Z' | 'X'))
            .collect();
        if workers.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nested pool's workers outlived their task: {workers:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// --- 7. A forked caller -----------------------------------------------------

fn a_forked_caller() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let workers: HashSet<u32> = common::worker_pids().into_iter().collect();
    // SAFETY: the child runs the checks below and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let inherited = pool.map(double, 0..4u64);
                assert!(
                    matches!(inherited, Err(Error::Inherited { .. })),
                    "{inherited:?}"
                );
                assert!(matches!(
                    pool.apply_async(double, (1,)).get(),
                    Err(Error::Inherited { .. })
                ));
                let own = ProcessPool::new(2).unwrap();
                assert_eq!(own.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
                drop(own);
                drop(pool);
            }))
            .map_or(1, |()| 0);
            // SAFETY: leaves at once, running nothing of the parent's.
            unsafe { nix::libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = common::within("the forked child", Duration::from_secs(30), move || {
                nix::sys::wait::waitpid(child, None).unwrap()
            });
            assert_eq!(
                status,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "the forked child's checks"
            );
            assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
            let now: HashSet<u32> = common::worker_pids().into_iter().collect();
            assert_eq!(now, workers, "the parent's workers are untouched");
        }
    }
}

// --- 8. Names in ps ---------------------------------------------------------

fn names_in_ps() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(double, 0..2u64).unwrap(), [0, 2]);
    let servers = common::fork_servers();
    assert_eq!(servers.len(), 1);
    let workers = common::workers();
    assert_eq!(workers.len(), 2);
    for worker in &workers {
        assert_eq!(worker.name(), "forkmap-worker");
        assert_eq!(worker.ppid, servers[0].pid);
    }
    let group = |pid: u32| nix::unistd::getpgid(Some(Pid::from_raw(pid as i32))).unwrap();
    let mine = group(std::process::id());
    assert_ne!(
        group(servers[0].pid),
        mine,
        "the server's own process group"
    );
    for worker in &workers {
        assert_eq!(
            group(worker.pid).as_raw() as u32,
            worker.pid,
            "a worker's own group"
        );
    }
}

#[remote]
fn overflowing(depth: u64) -> impl Fn(u64) -> u64 {
    move |x| deeper(x + depth)
}

#[allow(unconditional_recursion)]
fn deeper(x: u64) -> u64 {
    let frame = [x; 1024];
    std::hint::black_box(&frame);
    deeper(frame[x as usize % 1024] + 1) + 1
}

fn a_stack_overflow() {
    let pool = ProcessPool::new(1).unwrap();
    let err = pool.apply(overflowing(1), (1,)).unwrap_err();
    assert!(err.is_worker_death(), "{err:?}");
}

/// A task that overflows its stack: the message on stderr names the task.
fn stack_overflow_names_its_task() {
    let stderr = common::run_scenario("a_stack_overflow", common::this_binary(), &[]);
    assert!(
        stderr.contains("overflowed its worker's stack"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("`test_processes::overflowing`"),
        "the task's name: {stderr}"
    );
    assert!(!stderr.contains("forkmap-dispatcher"), "{stderr}");
}

// --- 9. Values over the limit -----------------------------------------------

/// A result of 1 GiB, past what one value may take.
fn huge(_: u64) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![0u8; 1 << 30])
}

fn values_over_the_limit() {
    let pool = ProcessPool::new(1).unwrap();
    let err = pool.apply(huge, (0,)).unwrap_err();
    assert!(matches!(err, Error::Codec { .. }), "{err:?}");
    assert_eq!(err.index(), Some(0));
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert_eq!(pool.apply(double, (3,)).unwrap(), 6);
    let argument = serde_bytes::ByteBuf::from(vec![0u8; 1 << 30]);
    let err = pool
        .apply(|b: serde_bytes::ByteBuf| b.len(), (argument,))
        .unwrap_err();
    assert!(matches!(err, Error::Codec { .. }), "{err:?}");
    assert!(err.to_string().contains("over the limit"), "{err}");
}
