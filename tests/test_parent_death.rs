//! A program killed with SIGKILL, which runs no destructor, takes its pool's
//! workers with it, and its fork server too, within a second, a worker
//! whose task gave up root included; what the tasks printed has reached the
//! program's stdout and stderr.
//!
//! `harness = false`: `main` re-runs this binary as the program under test,
//! three ways: with the fork server started by its first pool ("lazy"), by
//! `forkmap::init()` ("init"), and with no server, its workers forked from
//! the program itself (`FORKMAP_NO_FORK_SERVER=1`: "direct").

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use common::{descendants, process, Process};
use forkmap::ProcessPool;

/// The first argument that makes this binary the program under test.
const CHILD: &str = "--forkmap-parent-death-child";
const WORKERS: usize = 3;
const ITEMS: u64 = 9;
/// Text the program leaves in its stdout buffer, without a newline, before
/// workers are forked: it must come out once, not once more per worker.
const UNFINISHED: &str = "[unfinished line]";
/// How long the program under test may take to start its pool and report.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long its workers and server may outlive it.
const GONE_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The first pool starts the fork server, which forks the workers.
    Lazy,
    /// `forkmap::init()` starts the fork server first.
    Init,
    /// No fork server: the pool forks its workers from this program.
    Direct,
}

const MODES: [Mode; 3] = [Mode::Lazy, Mode::Init, Mode::Direct];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Lazy => "lazy",
            Mode::Init => "init",
            Mode::Direct => "direct",
        }
    }

    fn has_server(self) -> bool {
        self != Mode::Direct
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let under_test = match args.as_slice() {
        [flag, name] if flag == CHILD => MODES.into_iter().find(|mode| mode.name() == name),
        _ => None,
    };
    match under_test {
        Some(mode) => program_under_test(mode),
        // Anything else, such as `--nocapture` from `cargo test -- ...`: the test.
        None => common::within("test_parent_death", Duration::from_secs(30), || {
            for mode in MODES {
                kill_the_program(mode);
            }
        }),
    }
}

/// A task that says which item it runs and where, on both streams.
fn speak(i: u64) -> u32 {
    let pid = std::process::id();
    println!("stdout from item {i} in {pid}");
    // Whole, in one write: stderr is unbuffered, so `eprintln!` writes each
    // piece of its format separately, and the workers' lines would interleave.
    io::stderr()
        .write_all(format!("stderr from item {i} in {pid}\n").as_bytes())
        .unwrap();
    pid
}

/// The program under test: a pool that has run one map, alive until the
/// program is killed.
fn program_under_test(mode: Mode) -> ! {
    print!("{UNFINISHED}");
    if mode == Mode::Init {
        forkmap::init().expect("the fork server starts");
    }
    let pool = ProcessPool::new(WORKERS).expect("a pool starts");
    let ran = pool.map(speak, 0..ITEMS).expect("the map runs");
    assert_eq!(ran.len(), ITEMS as usize);
    // With a server, as root, a task gives up root and runs on, as one
    // running untrusted code might: that clears its worker's parent-death
    // signal, and the server must take it down itself.
    let _running = (mode.has_server() && uid(std::process::id()) == Some(0)).then(|| {
        let running = pool.apply_async(give_up_root, (0,));
        let deadline = Instant::now() + READY_WITHIN;
        while !common::workers().iter().any(|w| uid(w.pid) == Some(NOBODY)) {
            assert!(Instant::now() < deadline, "no task gave up root");
            thread::sleep(Duration::from_millis(5));
        }
        running
    });
    let mut out = io::stdout().lock();
    writeln!(out, "ready {}", std::process::id()).unwrap();
    out.flush().unwrap();
    drop(out);
    // Waits to be killed. It reads stdin rather than sleeping for good: the
    // test never closes it, and a program whose test has died sees its end
    // and does not linger.
    let _ = io::stdin().read_to_end(&mut Vec::new());
    drop(pool);
    std::process::exit(2);
}

/// User and group `nobody`.
const NOBODY: u32 = 65534;

/// Gives up root for `nobody`, then works for a minute.
fn give_up_root(_: u64) -> u64 {
    // SAFETY: `setgid` and `setuid` take ids and touch no memory.
    let given_up = unsafe { nix::libc::setgid(NOBODY) == 0 && nix::libc::setuid(NOBODY) == 0 };
    assert!(given_up, "setuid: {}", io::Error::last_os_error());
    thread::sleep(Duration::from_secs(60));
    0
}

/// The real user id of process `pid`.
fn uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

enum Event {
    Line(Stream, String),
    End(Stream),
}

/// Sends each line of `pipe` on `events`, then its end.
fn read_lines(pipe: impl Read + Send + 'static, stream: Stream, events: Sender<Event>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if events.send(Event::Line(stream, line)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::End(stream));
    });
}

/// What the program under test has printed so far.
#[derive(Default)]
struct Output {
    stdout: Vec<String>,
    stderr: Vec<String>,
    ended: HashSet<&'static str>,
}

impl Output {
    /// Takes events until `until` says stop, failing after `deadline`.
    fn take_until(
        &mut self,
        events: &Receiver<Event>,
        deadline: Instant,
        what: &str,
        mut until: impl FnMut(&Self) -> bool,
    ) {
        while !until(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::Line(Stream::Stdout, line)) => self.stdout.push(line),
                Ok(Event::Line(Stream::Stderr, line)) => self.stderr.push(line),
                Ok(Event::End(Stream::Stdout)) => {
                    self.ended.insert("stdout");
                }
                Ok(Event::End(Stream::Stderr)) => {
                    self.ended.insert("stderr");
                }
                Err(_) => panic!(
                    "no {what} in time; stdout so far: {:?}, stderr so far: {:?}, ended: {:?}",
                    self.stdout, self.stderr, self.ended
                ),
            }
        }
    }
}

/// Whether `p` still runs: its pid is not gone, not reused, and not a
/// zombie (a dead orphan stays one if no ancestor reaps it).
fn still_running(p: &Process) -> bool {
    process(p.pid).is_some_and(|now| now.started == p.started && !matches!(now.state, 'Z' | 'X'))
}

/// Kills the program under test if a check fails, so it does not linger.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the program under test in `mode`, waits for its pool, kills it
/// with SIGKILL and checks that its workers (and server) follow it.
fn kill_the_program(mode: Mode) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if mode == Mode::Direct {
        command.env("FORKMAP_NO_FORK_SERVER", "1");
    }
    let mut child = command
        .args([CHILD, mode.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program under test starts");
    let (events, received) = mpsc::channel();
    read_lines(child.stdout.take().unwrap(), Stream::Stdout, events.clone());
    read_lines(child.stderr.take().unwrap(), Stream::Stderr, events);
    let mut program = Killed(child);
    let program_pid = program.0.id();

    let mut output = Output::default();
    output.take_until(
        &received,
        Instant::now() + READY_WITHIN,
        "ready line",
        |output| output.stdout.iter().any(|line| line.starts_with("ready ")),
    );
    let ready = output.stdout.last().unwrap().clone();
    assert_eq!(ready, format!("ready {program_pid}"), "{}", mode.name());

    let below = descendants(program_pid);
    let servers: Vec<u32> = below
        .iter()
        .filter(|p| p.ppid == program_pid && p.name() == "forkmap-server")
        .map(|p| p.pid)
        .collect();
    let workers: HashSet<u32> = below
        .iter()
        .filter(|p| !servers.contains(&p.pid))
        .map(|p| p.pid)
        .collect();
    assert_eq!(
        servers.len(),
        usize::from(mode.has_server()),
        "{}: the program's fork servers, among its descendants {below:?}",
        mode.name()
    );
    let forker = servers.first().copied().unwrap_or(program_pid);
    let forked_by_forker = below
        .iter()
        .all(|p| workers.contains(&p.pid) == (p.ppid == forker));
    assert!(
        workers.len() == WORKERS && forked_by_forker,
        "{}: {WORKERS} workers, all forked by {forker}, were expected below \
         {program_pid}: {below:?}",
        mode.name()
    );

    let killed_at = Instant::now();
    program.0.kill().unwrap();
    let status = program.0.wait().unwrap();
    let mut gone_after: HashMap<u32, Duration> = HashMap::new();
    loop {
        for p in &below {
            if !gone_after.contains_key(&p.pid) && !still_running(p) {
                gone_after.insert(p.pid, killed_at.elapsed());
            }
        }
        if gone_after.len() == below.len() {
            break;
        }
        if killed_at.elapsed() > GONE_WITHIN {
            let left: Vec<Process> = below
                .iter()
                .filter(|p| !gone_after.contains_key(&p.pid))
                .filter_map(|p| process(p.pid))
                .collect();
            panic!(
                "{}: {GONE_WITHIN:?} after the program ({status}) was killed, these still \
                 run: {left:?}",
                mode.name()
            );
        }
        thread::sleep(Duration::from_millis(1));
    }
    let zombies = below
        .iter()
        .filter(|p| process(p.pid).is_some_and(|now| now.started == p.started))
        .count();
    let gone: Vec<String> = below
        .iter()
        .map(|p| {
            let role = if servers.contains(&p.pid) {
                "server"
            } else {
                "worker"
            };
            format!("{role} {} after {:.2?}", p.pid, gone_after[&p.pid])
        })
        .collect();

    // Every process that held the pipes is gone, so both have ended.
    output.take_until(
        &received,
        Instant::now() + GONE_WITHIN,
        "end of the pipes after every descendant was gone",
        |output| output.ended.len() == 2,
    );
    let unfinished: usize = output
        .stdout
        .iter()
        .map(|line| line.matches(UNFINISHED).count())
        .sum();
    assert_eq!(
        unfinished,
        1,
        "{}: what the program's stdout buffer held at the fork came out {unfinished} times",
        mode.name()
    );
    let stdout: Vec<String> = output
        .stdout
        .iter()
        .map(|line| line.replace(UNFINISHED, ""))
        .collect();
    let readies = stdout.iter().filter(|line| **line == ready).count();
    assert_eq!(readies, 1, "{}: stdout {:?}", mode.name(), stdout);
    let task_stdout: Vec<String> = stdout
        .iter()
        .filter(|line| **line != ready)
        .cloned()
        .collect();
    check_task_lines(mode, "stdout", &task_stdout, &workers);
    check_task_lines(mode, "stderr", &output.stderr, &workers);

    println!(
        "test_parent_death {}: program {program_pid} ended by {status}; its {} descendants gone \
         within {GONE_WITHIN:?}: {} ({zombies} of them zombies not yet reaped by their new \
         parent); the {ITEMS} stdout and {ITEMS} stderr lines of the tasks reached the pipes, \
         which closed",
        mode.name(),
        below.len(),
        gone.join(", "),
    );
}

/// Checks that `lines` are those `speak` writes on `stream`: one per item,
/// each from a worker.
fn check_task_lines(mode: Mode, stream: &str, lines: &[String], workers: &HashSet<u32>) {
    let prefix = format!("{stream} from item ");
    let mut items: Vec<u64> = lines
        .iter()
        .map(|line| {
            let parsed = line
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once(" in "))
                .and_then(|(item, pid)| Some((item.parse().ok()?, pid.parse().ok()?)));
            let Some((item, pid)) = parsed else {
                panic!("{}: unexpected {stream} line {line:?}", mode.name());
            };
            assert!(
                workers.contains(&pid),
                "{}: {line:?} came from no worker of {workers:?}",
                mode.name()
            );
            item
        })
        .collect();
    items.sort_unstable();
    assert_eq!(
        items,
        (0..ITEMS).collect::<Vec<_>>(),
        "{}: one {stream} line per item was expected: {lines:?}",
        mode.name()
    );
}
