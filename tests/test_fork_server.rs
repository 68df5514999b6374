//! The fork server starts itself, from any thread, and is never a single
//! point of failure:
//!
//! - a program whose other threads hold stdout's lock and the allocator's
//!   starts 1,000 pools, and no worker hangs: workers come from the server,
//!   never from the program;
//! - a pool built inside a `OnceLock` initialiser, whose task uses the same
//!   `OnceLock`, returns (a worker forked from the program would wait for
//!   the initialiser for good);
//! - a server started from a thread that then ends goes on serving;
//! - when a spawn fails for want of descriptors (in the program or in the
//!   server) or of processes (`ulimit -u`), only the pool that asked gets an
//!   error: other pools' items all succeed, and later workers still come
//!   from the same server;
//! - a server killed between calls is replaced at the next spawn;
//! - a task that signals its worker's parent, the server, to end it harms
//!   nothing; one that stops it (SIGSTOP) has it sent SIGCONT;
//! - a program that ignores SIGCHLD still learns how its workers ended;
//! - where no server can be started (here: the program runs under the
//!   dynamic loader, so that its `/proc/self/exe` is the loader), pools fork
//!   their workers from the program and say so once, unless
//!   `FORKMAP_QUIET=1`; with a server, forkmap prints nothing.
//!
//! `harness = false`: each scenario runs in a process of its own (this
//! binary, run again with the scenario's name), so that each starts without
//! a server and counts only its own processes.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use forkmap::{Error, ProcessPool};
use nix::libc;

fn main() {
    if common::run_scenario_if_asked(&[SCENARIOS, OTHERS].concat()) {
        return;
    }
    for (name, _) in SCENARIOS {
        let stderr = common::run_scenario(name, common::this_binary(), &[]);
        assert!(
            !stderr.contains("forkmap:"),
            "{name}: forkmap printed with a server running: {stderr}"
        );
    }
    without_a_server();
}

const SCENARIOS: &[common::Scenario] = &[
    ("pools_beside_lock_holders", pools_beside_lock_holders),
    ("a_pool_in_a_once_lock", a_pool_in_a_once_lock),
    ("a_server_outlives_its_thread", a_server_outlives_its_thread),
    (
        "no_descriptors_in_the_program",
        no_descriptors_in_the_program,
    ),
    ("no_descriptors_in_the_server", no_descriptors_in_the_server),
    ("no_processes_for_the_server", no_processes_for_the_server),
    (
        "no_address_space_for_the_rings",
        no_address_space_for_the_rings,
    ),
    ("a_killed_server_is_replaced", a_killed_server_is_replaced),
    ("a_task_signals_the_server", a_task_signals_the_server),
    ("a_task_stops_the_server", a_task_stops_the_server),
    ("the_program_ignores_sigchld", the_program_ignores_sigchld),
    (
        "the_program_closed_its_standard_streams",
        the_program_closed_its_standard_streams,
    ),
    (
        "the_server_ends_with_the_program_not_its_child",
        the_server_ends_with_the_program_not_its_child,
    ),
    (
        "workers_start_in_the_current_directory",
        workers_start_in_the_current_directory,
    ),
    ("a_worker_holds_only_its_link", a_worker_holds_only_its_link),
];

/// Scenarios that `main` runs in another way than [`SCENARIOS`].
const OTHERS: &[common::Scenario] = &[
    ("forked_from_the_program", forked_from_the_program),
    (
        "a_program_that_forks_then_exits",
        a_program_that_forks_then_exits,
    ),
];

/// Runs the program under the dynamic loader: `/proc/self/exe` is then the
/// loader, which cannot be a fork server.
fn without_a_server() {
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("a dynamic loader to run the program under");
    let under_loader = || {
        let mut command = Command::new(loader);
        command.arg(std::env::current_exe().unwrap());
        command
    };
    let stderr = common::run_scenario("forked_from_the_program", under_loader(), &[]);
    let warnings = stderr
        .matches("forkmap: could not start the fork server")
        .count();
    assert_eq!(warnings, 1, "one warning was expected: {stderr}");
    assert!(stderr.contains("FORKMAP_QUIET=1"), "{stderr}");
    let quiet = common::run_scenario(
        "forked_from_the_program",
        under_loader(),
        &[("FORKMAP_QUIET", "1")],
    );
    assert!(!quiet.contains("forkmap:"), "FORKMAP_QUIET=1: {quiet}");
}

fn double(x: u64) -> u64 {
    x * 2
}

/// The sockets and pipes this process holds from descriptor 3 on.
fn sockets_and_pipes(_: u64) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if fd >= 3 && (target.starts_with("socket:") || target.starts_with("pipe:")) {
            found.push(format!("{fd} -> {target}"));
        }
    }
    found
}

/// Takes stdout's lock and allocates, and says who forked this worker.
fn print_and_allocate(x: u64) -> (u64, u32) {
    use std::io::Write;
    let scratch: Vec<u64> = (0..64).collect();
    let mut out = std::io::stdout().lock();
    out.flush().unwrap();
    drop(out);
    (x * 2 + scratch[0], std::os::unix::process::parent_id())
}

/// The one fork server of this process.
fn server_pid() -> u32 {
    let servers = common::fork_servers();
    assert_eq!(servers.len(), 1, "one fork server: {servers:?}");
    servers[0].pid
}

fn pools_beside_lock_holders() {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut kept = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let out = std::io::stdout().lock();
                    // The allocator's locks are taken while stdout's is held.
                    kept.push(vec![0u8; 512]);
                    if kept.len() > 64 {
                        kept.clear();
                    }
                    drop(out);
                }
            });
        }
        let me = std::process::id();
        for round in 0..1_000 {
            let pool = ProcessPool::new(2).expect("a pool starts");
            let results = pool
                .map(print_and_allocate, 0..4u64)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            for (x, (doubled, forker)) in results.into_iter().enumerate() {
                assert_eq!(doubled, x as u64 * 2);
                assert_ne!(forker, me, "a worker was forked by the program");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(common::fork_servers().len(), 1, "1,000 pools, one server");
}

static POOL: OnceLock<ProcessPool> = OnceLock::new();

/// The pool, built the first time it is asked for, and warmed up by a call
/// whose task asks for it too.
fn pool_in_once_lock() -> &'static ProcessPool {
    POOL.get_or_init(|| {
        let pool = ProcessPool::new(2).expect("a pool starts");
        let warmed = pool
            .map(doubled_through_the_pool, 0..4u64)
            .expect("warm-up");
        assert_eq!(warmed, [0, 2, 4, 6]);
        pool
    })
}

/// Asks for the pool from a task: in a worker, which sees the program's
/// statics as they are at start, that builds a pool of its own.
fn doubled_through_the_pool(x: u64) -> u64 {
    if std::env::var_os("FORKMAP_NESTED").is_some() {
        return x * 2;
    }
    std::env::set_var("FORKMAP_NESTED", "1");
    pool_in_once_lock()
        .apply(double, (x,))
        .expect("a nested call")
}

fn a_pool_in_a_once_lock() {
    assert_eq!(pool_in_once_lock().map(double, 0..3u64).unwrap(), [0, 2, 4]);
}

fn a_server_outlives_its_thread() {
    let first = thread::spawn(|| {
        let pool = ProcessPool::new(2).unwrap();
        assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
        server_pid()
    })
    .join()
    .unwrap();
    thread::sleep(Duration::from_millis(100));
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    assert_eq!(server_pid(), first, "the same server serves on");
}

/// Sleeps 300 ms, then doubles: an item that is running while another pool
/// fails to start.
fn slow_double(x: u64) -> u64 {
    thread::sleep(Duration::from_millis(300));
    x * 2
}

/// Starts a pool whose items run while `fail` makes the next spawn fail:
/// the pool that asks then gets an error, the running pool's items all
/// succeed, and, once `restore` has run, a new pool comes from the same
/// server.
fn only_the_asking_pool_fails(fail: impl FnOnce(u32), restore: impl FnOnce(u32), what: &str) {
    only_this_pool_fails(|| ProcessPool::new(2), fail, restore, what);
}

/// As [`only_the_asking_pool_fails`], for the pool that `ask` builds.
fn only_this_pool_fails(
    ask: impl FnOnce() -> Result<ProcessPool, Error>,
    fail: impl FnOnce(u32),
    restore: impl FnOnce(u32),
    what: &str,
) {
    let running = ProcessPool::new(2).unwrap();
    let server = server_pid();
    let handle = running.map_async(slow_double, 0..8u64);
    fail(server);
    let refused = ask();
    restore(server);
    match refused {
        Err(Error::Spawn(e)) => println!("{what}: the asking pool got: {e}"),
        Err(other) => panic!("{what}: the wrong error: {other:?}"),
        Ok(_) => panic!("{what}: a pool started although spawning could not work"),
    }
    assert_eq!(
        handle.get().expect("the running pool's items"),
        (0..8).map(|x| x * 2).collect::<Vec<u64>>()
    );
    let after = ProcessPool::new(2).expect("a pool starts again");
    assert_eq!(after.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    assert_eq!(server_pid(), server, "{what}: the same server serves on");
    for worker in common::workers() {
        assert_eq!(worker.ppid, server, "a worker not from the server");
    }
}

/// Sets the soft limit of `resource` for process `pid` (0: this one).
fn set_limit(pid: u32, resource: libc::__rlimit_resource_t, soft: libc::rlim_t) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `prlimit` reads `new` and writes `old`, both valid locals.
    let got = unsafe { libc::prlimit(pid as i32, resource, std::ptr::null(), &mut old) };
    assert_eq!(got, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let set = unsafe { libc::prlimit(pid as i32, resource, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn no_descriptors_in_the_program() {
    only_the_asking_pool_fails(
        // Room for the new pool's own socket pair, none for a worker's.
        |_| {
            set_limit(
                0,
                libc::RLIMIT_NOFILE,
                common::open_descriptors() as u64 + 2,
            )
        },
        |_| set_limit(0, libc::RLIMIT_NOFILE, 1024),
        "no descriptors in the program",
    );
}

fn no_descriptors_in_the_server() {
    only_the_asking_pool_fails(
        |server| set_limit(server, libc::RLIMIT_NOFILE, 4),
        |server| set_limit(server, libc::RLIMIT_NOFILE, 1024),
        "no descriptors in the server",
    );
}

/// `ulimit -v`: the server forks the worker and sends its rings, and the
/// program cannot map them. The pool that asked gets an error (its worker
/// killed and reaped); the program's other pools, which take the same
/// lock of the pools' descriptors, serve on.
fn no_address_space_for_the_rings() {
    // Room for a dispatcher thread, none for two rings of 64 MiB.
    let room = 32 << 20;
    only_this_pool_fails(
        || {
            let refused = ProcessPool::builder()
                .workers(2)
                .ring_size(64 << 20)
                .build();
            if let Err(error) = &refused {
                // The error says what to change.
                assert!(error.to_string().contains("ring_size"), "{error}");
            }
            refused
        },
        |_| {
            let size = common::status_kib("VmSize") * 1024;
            set_limit(0, libc::RLIMIT_AS, size + room);
        },
        |_| set_limit(0, libc::RLIMIT_AS, libc::RLIM_INFINITY),
        "no address space for the rings",
    );
}

/// `ulimit -u`. The limit does not hold for root, so as root this scenario
/// runs itself again as user `nobody`.
fn no_processes_for_the_server() {
    // SAFETY: `geteuid` only reads this process's credentials.
    if unsafe { libc::geteuid() } == 0 {
        let status = common::this_binary()
            .args([common::SCENARIO, "no_processes_for_the_server"])
            .uid(65534)
            .gid(65534)
            .status()
            .unwrap();
        assert!(status.success(), "as nobody: {status}");
        return;
    }
    only_the_asking_pool_fails(
        |server| set_limit(server, libc::RLIMIT_NPROC, 1),
        |server| set_limit(server, libc::RLIMIT_NPROC, libc::RLIM_INFINITY),
        "no processes for the server",
    );
}

fn a_killed_server_is_replaced() {
    let before = ProcessPool::new(2).unwrap();
    assert_eq!(before.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let first = server_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(200));
    let after = ProcessPool::new(2).expect("a pool after the server was killed");
    assert_eq!(after.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let second = server_pid();
    assert_ne!(second, first, "a new server");
    // The old pool's workers died with the old server, between calls: it
    // replaces them, from the new server, and loses nothing.
    assert_eq!(before.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    for worker in common::workers() {
        assert_eq!(worker.ppid, second, "a worker not from the new server");
    }
}

/// Pools without a server: workers forked from the program, which say so
/// once (whatever the number of pools), and work.
fn forked_from_the_program() {
    let error = forkmap::init().expect_err("no fork server can start under the loader");
    assert!(matches!(error, Error::Spawn(_)), "{error:?}");
    // A thread pool's links are the pool's own: a worker forked after them
    // holds only its own socket and bell, beside what the program had.
    let had = sockets_and_pipes(0);
    let threads = forkmap::ThreadPool::new(2).unwrap();
    assert_eq!(threads.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let pool = ProcessPool::new(1).unwrap();
    let mut links = pool.apply(sockets_and_pipes, (0,)).unwrap();
    links.retain(|link| !had.contains(link));
    assert_eq!(
        links.len(),
        2,
        "a worker beside a thread pool holds {links:?}"
    );
    drop((pool, threads));
    for _ in 0..3 {
        let pool = ProcessPool::new(2).unwrap();
        assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
        let forkers = pool
            .map(|_: u64| std::os::unix::process::parent_id(), 0..4u64)
            .unwrap();
        assert!(
            forkers.iter().all(|&pid| pid == std::process::id()),
            "workers forked from the program: {forkers:?}"
        );
    }
    assert!(common::fork_servers().is_empty());
}

/// What a task may send its worker's parent, thinking it its program.
const ENDING_SIGNALS: [libc::c_int; 10] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Sends `signal` to this process's parent; gives the parent's pid.
fn signal_the_parent(signal: libc::c_int) -> u32 {
    let parent = std::os::unix::process::parent_id();
    // SAFETY: `kill` takes a pid and a signal number, touching no memory.
    unsafe { libc::kill(parent as libc::pid_t, signal) };
    thread::sleep(Duration::from_millis(20));
    parent
}

/// Each signal that ends or stops a process by default, sent by a task to
/// its worker's parent: the server ignores them all, so another pool's
/// items, running meanwhile, all succeed, and the same server serves on.
fn a_task_signals_the_server() {
    let bystander = ProcessPool::new(2).unwrap();
    let server = server_pid();
    let handle = bystander.map_async(slow_double, 0..8u64);
    let pool = ProcessPool::new(1).unwrap();
    let parents = pool.map(signal_the_parent, ENDING_SIGNALS).unwrap();
    assert!(
        parents.iter().all(|&parent| parent == server),
        "{parents:?}"
    );
    assert_eq!(
        handle.get().expect("the other pool's items"),
        (0..8).map(|x| x * 2).collect::<Vec<u64>>()
    );
    let state = common::process(server).expect("the server runs").state;
    assert!(matches!(state, 'S' | 'R'), "the server is in state {state}");
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    assert_eq!(server_pid(), server, "the same server serves on");
}

/// A task stops its worker's parent, the server, with SIGSTOP (which no
/// process can ignore). Its worker retires after that task, and the pool
/// asks the server to reap it: the server does not answer, so it is sent
/// SIGCONT and goes on. Another pool's item, running meanwhile, succeeds,
/// and the same server serves on.
fn a_task_stops_the_server() {
    let bystander = ProcessPool::new(1).unwrap();
    let running = bystander.apply_async(slow_double, (21,));
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_worker(1)
        .build()
        .unwrap();
    let server = server_pid();
    assert_eq!(
        pool.apply(signal_the_parent, (libc::SIGSTOP,)).unwrap(),
        server
    );
    let started = std::time::Instant::now();
    assert_eq!(pool.apply(double, (2,)).unwrap(), 4);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the next call took {:?}",
        started.elapsed()
    );
    assert_eq!(running.get().expect("the other pool's item"), 42);
    assert_eq!(server_pid(), server, "the same server serves on");
    let state = common::process(server).expect("the server runs").state;
    assert!(matches!(state, 'S' | 'R'), "the server is in state {state}");
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
}

/// Aborts on item 3; otherwise gives the signals this worker ignores
/// (`SigIgn` in `/proc/self/status`).
fn abort_on_3(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    ignored_signals()
}

/// The signals a worker and its program should agree on, as `SigIgn`
/// bits: the standard ones (1 to 31), but SIGPIPE, which Rust's runtime
/// sets in each process as it sees fit.
const COMPARED: u64 = ((1 << 31) - 1) & !(1 << (libc::SIGPIPE - 1));

fn ignored_signals() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status.lines().find_map(|line| line.strip_prefix("SigIgn:"));
    u64::from_str_radix(mask.unwrap().trim(), 16).unwrap()
}

/// A program that ignores SIGCHLD, which its fork server would inherit
/// through `exec`: the kernel would then reap the workers itself, and how
/// they ended would be lost. The server takes SIGCHLD's default action, so
/// an abort is reported as SIGABRT. Its workers, for their part, ignore
/// what the program ignores (SIGHUP here, as under `nohup`), as the
/// program's own children would.
fn the_program_ignores_sigchld() {
    // SAFETY: setting a signal's action to "ignore" installs no code.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let ours = ignored_signals();
    let pool = ProcessPool::new(2).unwrap();
    let results: Vec<_> = pool.with_chunk_size(1).imap(abort_on_3, 0..6u64).collect();
    for (index, result) in results.iter().enumerate() {
        match result {
            Err(Error::WorkerDied { death, .. }) if index == 3 => assert_eq!(
                *death,
                forkmap::Death::Signal(libc::SIGABRT),
                "how item 3's worker ended"
            ),
            Ok(theirs) if index != 3 => assert_eq!(
                theirs & COMPARED,
                ours & COMPARED,
                "item {index}: a worker ignores other signals than its program"
            ),
            other => panic!("item {index}: {other:?}"),
        }
    }
}

/// A task that prints on both streams, and panics for item 3.
fn chatty(x: u64) -> u64 {
    println!("item {x}");
    eprintln!("item {x}");
    assert_ne!(x, 3, "item 3 panics");
    x * 2
}

/// A program that closed its standard streams (a daemon that did not
/// reopen them) starts the fork server: what its tasks print goes nowhere,
/// never into a worker's link, and every item gives its own result.
fn the_program_closed_its_standard_streams() {
    let saved = nix::unistd::dup(std::io::stderr()).unwrap();
    for fd in 0..=2 {
        // SAFETY: closes a descriptor by number, touching no memory; no
        // handle of this process's owns 0, 1 or 2.
        unsafe { libc::close(fd) };
    }
    let results = {
        let pool = ProcessPool::new(2).unwrap();
        pool.map_results(chatty, 0..100u64).unwrap()
    };
    nix::unistd::dup2_stderr(&saved).unwrap();
    for (index, result) in results.iter().enumerate() {
        match index {
            3 => assert!(
                matches!(result, Err(Error::Panic { .. })),
                "item 3: {result:?}"
            ),
            _ => assert_eq!(
                result.as_ref().ok(),
                Some(&(index as u64 * 2)),
                "item {index}"
            ),
        }
    }
}

/// A program with a pool forks a child that keeps a copy of everything (the
/// fork server's socket included) and never calls `exec`, prints the pids
/// of its server, its workers and the child, and exits at once, without
/// dropping its pool.
fn a_program_that_forks_then_exits() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(double, 0..4u64).unwrap(), [0, 2, 4, 6]);
    let mut pids: Vec<u32> = common::fork_servers().iter().map(|p| p.pid).collect();
    pids.extend(common::worker_pids());
    // SAFETY: the child only sleeps and leaves, calling nothing that a
    // lock held by another thread at the fork could block.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            thread::sleep(Duration::from_secs(30));
            // SAFETY: leaves at once, running no destructor of the program's.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => pids.push(child.as_raw() as u32),
    }
    let line: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("{}", line.join(" "));
    std::process::exit(0);
}

/// The fork server and the workers end with the program, though a child it
/// forked lives on with a copy of the program's socket to the server.
fn the_server_ends_with_the_program_not_its_child() {
    // Not `output()`: the child keeps a copy of the program's stdout.
    let mut program = common::this_binary()
        .args(["--forkmap-scenario", "a_program_that_forks_then_exits"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(program.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let status = program.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let pids: Vec<u32> = line
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    let (&child, ours) = pids.split_last().expect("the child's pid");
    assert_eq!(ours.len(), 3, "a server and two workers: {ours:?}");
    let alive = |pid: u32| common::process(pid).is_some_and(|p| !matches!(p.state, 'Z' | 'X'));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|&pid| alive(pid)) && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let child_alive = alive(child);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(child_alive, "the program's child {child} had already gone");
    let left: Vec<u32> = ours.iter().copied().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "left behind by the program: {left:?}");
}

fn current_dir(_: u64) -> std::path::PathBuf {
    std::env::current_dir().unwrap()
}

/// A worker starts in the program's current directory as it is when the
/// worker starts, not as it was when the fork server did.
fn workers_start_in_the_current_directory() {
    forkmap::init().unwrap();
    let here = std::env::temp_dir().join(format!("forkmap-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&here).unwrap();
    std::env::set_current_dir(&here).unwrap();
    let here = std::env::current_dir().unwrap();
    let seen = ProcessPool::new(2).unwrap().map(current_dir, 0..4u64);
    std::env::set_current_dir("/").unwrap();
    let _ = std::fs::remove_dir(&here);
    assert!(seen.unwrap().iter().all(|dir| *dir == here));
}

/// What the worker running it has open from descriptor 3 on, by kind
/// (`socket`, `pipe`, `anon_inode:[pidfd]`, a path...), but the directory
/// it reads them from.
fn kinds_of_descriptors(_: u64) -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .parse::<i32>()
                .unwrap_or(0)
                >= 3
        })
        .map(|entry| std::fs::read_link(entry.path()).unwrap_or_default())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| !target.starts_with("/proc/"))
        .map(|target| target.split(":[").next().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    kinds
}

/// A worker holds its link's socket and bell, and nothing of the fork
/// server's (its socket to the program, its pidfd of the program).
fn a_worker_holds_only_its_link() {
    let pool = ProcessPool::new(2).unwrap();
    for kinds in pool.map(kinds_of_descriptors, 0..4u64).unwrap() {
        assert_eq!(kinds, ["pipe", "socket"], "a worker holds {kinds:?}");
    }
}
