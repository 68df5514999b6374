//! The MPI section (issue 15): `MpiPool` beside plain rsmpi send and
//! receive, on jobs of three ranks that this program starts by running
//! itself again under `mpirun`. In a raw job (`raw`) every rank uses rsmpi
//! and nothing else; in a pool job (`pool`) rank 0 uses an `MpiPool` that
//! the other ranks serve. The two kinds of job alternate, in rounds; rank 0
//! of each prints its figures, one a line, and this side reads them back.

pub(crate) mod pool;
pub(crate) mod raw;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::processes::{self, CpuTimes};
use crate::table::{Row, Spread, Target, MEGA, MICROS, PERCENT};

/// The argument that makes this program a rank of a raw job.
pub(crate) const RAW_JOB: &str = "--mpi-raw-job";

/// The argument that makes this program a rank of a pool job.
pub(crate) const POOL_JOB: &str = "--mpi-pool-job";

/// Ranks in each job.
const RANKS: usize = 3;

/// Workers of the pool on each rank but 0: two in all, as many as the raw
/// job's computing ranks, and as many as a 2-core machine runs at once.
pub(crate) const WORKERS_PER_RANK: usize = 1;

/// How many chunks of a call each rank holds at once, as `MpiPool` gives
/// them (twice its workers): the raw farm keeps as many batches in flight.
pub(crate) const IN_FLIGHT: usize = 2 * WORKERS_PER_RANK;

/// The longest a job may take before `timeout` ends it.
const JOB_TIMEOUT: &str = "180";

/// How a rank 0 starts the line of a figure: `figure <name> <value>`.
const FIGURE: &str = "figure";

/// The lines rank 0 of a pool job prints when its pool starts and stops
/// being idle.
const IDLE_BEGINS: &str = "idle-begins";
const IDLE_ENDS: &str = "idle-ends";

/// What one job measures: passed to its ranks as numbers after the job's
/// argument.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Items of the task farm, `map(x * 2)`, and how many times it runs
    /// after a warm-up.
    pub(crate) items: u64,
    pub(crate) reps: u64,
    /// Round trips of the latency case, after a tenth as many to warm up.
    pub(crate) round_trips: u64,
    /// Items of the CPU-bound case (pool jobs only), 0 to skip it.
    pub(crate) cpu_items: u64,
    /// Seconds a pool job's pool is left idle while this side watches the
    /// CPU time of its processes, 0 to skip it.
    pub(crate) idle_seconds: u64,
}

impl Plan {
    /// The plan of this process, if it was started as a rank of `job`.
    pub(crate) fn of_job(job: &str) -> Option<Plan> {
        let args: Vec<String> = std::env::args().collect();
        let at = args.iter().position(|arg| arg == job)?;
        let number = |i: usize| -> u64 {
            args.get(at + 1 + i)
                .and_then(|arg| arg.parse().ok())
                .unwrap_or_else(|| panic!("{job} is followed by five numbers"))
        };
        Some(Plan {
            items: number(0),
            reps: number(1),
            round_trips: number(2),
            cpu_items: number(3),
            idle_seconds: number(4),
        })
    }

    /// The arguments that start a rank of `job` with this plan.
    fn args(&self, job: &str) -> Vec<String> {
        let numbers = [
            self.items,
            self.reps,
            self.round_trips,
            self.cpu_items,
            self.idle_seconds,
        ];
        std::iter::once(job.to_owned())
            .chain(numbers.iter().map(u64::to_string))
            .collect()
    }

    /// The farm's batch: as many items as `MpiPool`'s map puts in a chunk
    /// (a quarter of each worker's share).
    pub(crate) fn batch(&self) -> usize {
        let workers = (RANKS - 1) * WORKERS_PER_RANK;
        (self.items as usize).div_ceil(4 * workers).max(1)
    }
}

/// Prints one figure of a job, for [`run`] to read.
pub(crate) fn report(name: &str, value: f64) {
    println!("{FIGURE} {name} {value}");
}

/// Says, for [`run`] to read, that the pool job's pool is idle from now on
/// (`true`), or no longer (`false`).
pub(crate) fn report_idle(idle: bool) {
    println!("{}", if idle { IDLE_BEGINS } else { IDLE_ENDS });
}

/// What the jobs reported: every value of each figure, and the CPU time
/// of an idle pool's processes.
#[derive(Debug, Default)]
struct Reports {
    figures: HashMap<String, Vec<f64>>,
    idle_percent: Option<f64>,
}

impl Reports {
    /// The spread of a figure's values.
    fn spread(&self, name: &str) -> Result<Spread, String> {
        match self.figures.get(name) {
            Some(values) if !values.is_empty() => Ok(Spread::of(values)),
            _ => Err(format!("no job reported the figure {name}")),
        }
    }
}

/// Runs the section: raw and pool jobs in alternation, one round of each
/// (`quick`) or three; the table's rows and a note about them.
pub(crate) fn run(quick: bool) -> Result<(Vec<Row>, String), String> {
    if Command::new("mpirun").arg("--version").output().is_err() {
        return Err("skipped: no `mpirun` on this machine (Debian: openmpi-bin)".into());
    }
    let rounds = if quick { 1 } else { 3 };
    let plan = |last: bool| Plan {
        items: if quick { 100_000 } else { 1_000_000 },
        reps: if quick { 1 } else { 3 },
        round_trips: if quick { 1_000 } else { 5_000 },
        cpu_items: match (last, quick) {
            (false, _) => 0,
            (true, true) => 2_000,
            (true, false) => 50_000,
        },
        idle_seconds: match (last, quick) {
            (false, _) => 0,
            (true, true) => 2,
            (true, false) => 5,
        },
    };
    let mut reports = Reports::default();
    for round in 1..=rounds {
        eprintln!("  round {round} of {rounds}: a raw rsmpi job, then an MpiPool job");
        job(RAW_JOB, plan(false), &mut reports)?;
        job(POOL_JOB, plan(round == rounds), &mut reports)?;
    }
    let rows = rows(&reports)?;
    let note = format!(
        "Jobs of {RANKS} ranks on this machine (`mpirun --oversubscribe --bind-to none`), \
         raw and pool jobs in alternation, {rounds} of each; medians over the jobs, then \
         their range. MpiPool: {WORKERS_PER_RANK} worker on each rank but 0. The raw farm: \
         rank 0 sends batches of {} u64 (as MpiPool's map chunks its items), {IN_FLIGHT} in \
         flight per rank, with immediate sends, and receives the doubled batches; ranks 1 \
         and 2 receive, double and send back with blocking calls. The raw round trip: one \
         u64 between ranks 0 and 1, blocking send and receive; the idle rank sleeps. \
         CPU-bound: {} items of about 10 µs, once each way, in the last pool job. Idle: the \
         CPU time of the last pool job's processes that run this program (its ranks, their \
         fork servers and workers, not mpirun) over {} s after its pool's last call; the \
         target is this program's reading of issue 15's \"ranks should not spin\".",
        plan(false).batch(),
        plan(true).cpu_items,
        plan(true).idle_seconds,
    );
    Ok((rows, note))
}

/// The section's rows, from what the jobs reported.
fn rows(reports: &Reports) -> Result<Vec<Row>, String> {
    let farm = reports.spread("farm")?;
    let raw_farm = reports.spread("raw_farm")?;
    let latency = reports.spread("latency")?;
    let raw_latency = reports.spread("raw_latency")?;
    let serial = reports.spread("serial")?.median;
    let ours = serial / reports.spread("cpu_bound")?.median;
    let theirs = serial / reports.spread("rayon")?.median;
    let idle = reports
        .idle_percent
        .ok_or("the pool job did not report an idle pool")?;
    Ok(vec![
        Row::new(
            "MPI task farm: MpiPool map(x*2) on 3 ranks, vs a raw rsmpi send/receive farm",
            (MEGA.spread(farm), MEGA.spread(raw_farm)),
            farm.median / raw_farm.median,
            Target::AtLeast(0.5),
        ),
        Row::new(
            "MPI latency: MpiPool apply_async(f,(x,)).get() median, vs rsmpi round trip",
            (MICROS.spread(latency), MICROS.spread(raw_latency)),
            latency.median / raw_latency.median,
            Target::Scale,
        ),
        Row::new(
            "MPI CPU-bound: MpiPool speed-up over serial on 3 ranks, vs rayon's on rank 0",
            (format!("{ours:.2}×"), format!("{theirs:.2}×")),
            ours / theirs,
            Target::Scale,
        ),
        Row::new(
            "MPI idle pool CPU: every rank, and each one's fork server and workers",
            (PERCENT.show(idle), PERCENT.show(100.0)),
            idle / 100.0,
            Target::Stated("not spinning: < 10%", idle < 10.0),
        ),
    ])
}

/// Runs one job of `RANKS` ranks of this program as `job`, bounded by
/// `timeout`, and adds what its rank 0 reports to `reports`.
fn job(job: &str, plan: Plan, reports: &mut Reports) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new("timeout")
        .args(["-k", "5", JOB_TIMEOUT, "mpirun", "--oversubscribe"])
        .args(["--bind-to", "none", "-n", &RANKS.to_string()])
        .arg(&exe)
        .args(plan.args(job))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("mpirun did not start: {e}"))?;
    let mut stderr = child.stderr.take().expect("a piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().expect("a piped stdout");
    let mut idle_since = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [FIGURE, name, value] => {
                let value = value.parse().map_err(|_| format!("a figure? {line}"))?;
                reports
                    .figures
                    .entry(name.to_owned())
                    .or_default()
                    .push(value);
            }
            [IDLE_BEGINS] => {
                let pids = job_processes(child.id(), &exe);
                idle_since = Some((CpuTimes::of(&pids), pids));
            }
            [IDLE_ENDS] => {
                if let Some((before, pids)) = idle_since.take() {
                    reports.idle_percent = Some(CpuTimes::of(&pids).percent_since(&before));
                }
            }
            _ => eprintln!("  {line}"),
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = errors.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "the job {job} failed ({status}); the end of its stderr:\n{}",
            tail.join("\n")
        ));
    }
    Ok(())
}

/// The processes of the job under `root` that run this program: its ranks,
/// their fork servers and their workers (not `mpirun`).
fn job_processes(root: u32, exe: &Path) -> Vec<u32> {
    processes::family(root)
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|their| their == exe)
        })
        .collect()
}
