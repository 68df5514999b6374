//! Helpers shared by the integration tests: one scan of the process table
//! and one hang guard.

// Each test binary compiles this module and uses only some of it; without
// this, clippy's `-D warnings` over `--all-targets` fails on the rest.
#![allow(dead_code)]

use std::fs;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// One process, as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    /// The state letter: `R`, `S`, `Z`, ...
    pub(crate) state: char,
    /// When it started, in clock ticks since boot: tells a reused pid apart.
    pub(crate) started: u64,
    /// Its name (`comm`, at most 15 bytes), padded with zeros.
    name: [u8; 16],
}

impl Process {
    /// Its name, as `ps` shows it: `forkmap-server`, `forkmap-worker`, ...
    pub(crate) fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(16);
        std::str::from_utf8(&self.name[..len]).unwrap_or("")
    }
}

/// Process `pid`, or `None` once it is gone.
pub(crate) fn process(pid: u32) -> Option<Process> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces; after
    // it: state, ppid, then 17 more fields before the start time.
    let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let mut name = [0; 16];
    let len = comm.len().min(16);
    name[..len].copy_from_slice(&comm.as_bytes()[..len]);
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some(Process {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
        name,
    })
}

/// Every process in the process table.
pub(crate) fn process_table() -> Vec<Process> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

/// The processes whose parent is `parent`, zombies included.
pub(crate) fn children_of(parent: u32) -> Vec<Process> {
    process_table()
        .into_iter()
        .filter(|p| p.ppid == parent)
        .collect()
}

/// The children of this process, zombies included.
pub(crate) fn children() -> Vec<Process> {
    children_of(std::process::id())
}

/// The fork servers this process started (its children of that name).
pub(crate) fn fork_servers() -> Vec<Process> {
    children()
        .into_iter()
        .filter(|p| p.name() == "forkmap-server")
        .collect()
}

/// The worker processes of this process's pools, zombies included: the
/// children of its fork servers, and any it forked itself.
pub(crate) fn workers() -> Vec<Process> {
    let servers: Vec<u32> = fork_servers().iter().map(|p| p.pid).collect();
    let me = std::process::id();
    process_table()
        .into_iter()
        .filter(|p| servers.contains(&p.ppid) || (p.ppid == me && p.name() != "forkmap-server"))
        .collect()
}

/// The pids of [`workers`].
pub(crate) fn worker_pids() -> Vec<u32> {
    workers().into_iter().map(|p| p.pid).collect()
}

/// Whether `pid` is a worker of this process's pools.
pub(crate) fn is_worker(pid: u32) -> bool {
    worker_pids().contains(&pid)
}

/// Every process below `root`, found by following parent pids down from it.
pub(crate) fn descendants(root: u32) -> Vec<Process> {
    let table = process_table();
    let mut below = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in table.iter().filter(|p| p.ppid == parent) {
            below.push(*p);
            parents.push(p.pid);
        }
    }
    below
}

/// How many descriptors this process has open.
pub(crate) fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A `kB` line of `/proc/self/status`, such as `VmRSS` or `VmHWM`, in KiB.
pub(crate) fn status_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let prefix = format!("{field}:");
    let line = status
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("/proc/self/status has no {field} line"));
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("unreadable {line:?}"))
}

/// This process's resident memory (`VmRSS`), in KiB.
pub(crate) fn resident_kib() -> u64 {
    status_kib("VmRSS")
}

/// The hang guard: runs `body` on a thread of its own and returns what it
/// returns, passes its panic on, and fails with a message naming `what` if
/// it has not ended within `limit`, so that a hang is a failure, not a stuck
/// run.
pub(crate) fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = done.send(body());
    });
    match finished.recv_timeout(limit) {
        Ok(value) => {
            runner.join().unwrap();
            value
        }
        // `body` panicked: pass its panic on.
        Err(RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(runner.join().unwrap_err())
        }
        Err(RecvTimeoutError::Timeout) => panic!("{what}: not finished after {limit:?}: it hangs"),
    }
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by a test for its whole run, so that tests that count this
/// process's children take turns and never see each other's workers.
pub(crate) fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A test that runs in a process of its own: this binary run again with
/// [`SCENARIO`] and the scenario's name (the test files with
/// `harness = false` use them, so that each scenario starts with no fork
/// server and counts only its own processes).
pub(crate) type Scenario = (&'static str, fn());

/// The first argument that makes a test binary run one scenario.
pub(crate) const SCENARIO: &str = "--forkmap-scenario";

/// When this binary was run for one scenario, runs it (bounded) and
/// returns true; the caller's `main` then returns.
pub(crate) fn run_scenario_if_asked(scenarios: &[Scenario]) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, name] = args.as_slice() else {
        return false;
    };
    if flag != SCENARIO {
        return false;
    }
    let &(_, scenario) = scenarios
        .iter()
        .find(|(known, _)| known == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    within(name, Duration::from_secs(90), scenario);
    true
}

/// Runs one scenario through `command` (this binary, or something that runs
/// it), bounded, with `env` added; fails if it fails, and returns what it
/// wrote on stderr.
pub(crate) fn run_scenario(
    name: &str,
    mut command: std::process::Command,
    env: &[(&str, &str)],
) -> String {
    let started = std::time::Instant::now();
    command.args([SCENARIO, name]);
    command.envs(env.iter().copied());
    let output = within(name, Duration::from_secs(120), move || {
        command.output().unwrap()
    });
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "scenario {name} failed: {}; its stderr: {stderr}",
        output.status
    );
    println!("{name} {env:?}: ok ({:.2?})", started.elapsed());
    stderr
}

/// This binary, to run a scenario with [`run_scenario`].
pub(crate) fn this_binary() -> std::process::Command {
    std::process::Command::new(std::env::current_exe().unwrap())
}

/// Where this process maps the memory files named `name` (`forkmap-ring`,
/// `forkmap-board`): each mapping's first address and the one past its end.
pub(crate) fn mappings(name: &str) -> Vec<(usize, usize)> {
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|line| line.contains(&format!("memfd:{name}")))
        .map(|line| {
            let (start, end) = line.split(' ').next().unwrap().split_once('-').unwrap();
            let address = |hex| usize::from_str_radix(hex, 16).unwrap();
            (address(start), address(end))
        })
        .collect()
}
