//! forkmap beside the machine's best raw mechanisms, rayon, a serial loop
//! and Python's pools, all measured in this one run, printed as tables of
//! figures and ratios against the targets of issue 14 (and issue 15's for
//! the MPI section).
//!
//! `cargo run --release --example compare` (a few minutes; add `--quick`
//! for a smoke run with small sizes and without Python; build with
//! `--features mpi` for the MPI section, which runs this program again
//! under `mpirun`)

mod cases;
#[cfg(feature = "mpi")]
mod mpi_section;
mod processes;
mod python;
mod raw;
mod raw_shm;
mod rounds;
mod table;

use std::time::{Duration, Instant};

use table::{Row, Target, MB_S, MEGA, MICROS, MILLIS, PERCENT, SECONDS};

/// The median of some durations.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() -> Result<(), forkmap::Error> {
    #[cfg(feature = "mpi")]
    if let Some(plan) = mpi_section::Plan::of_job(mpi_section::RAW_JOB) {
        // Its ranks start MPI themselves: `forkmap::init()` would make every
        // rank but 0 serve a pool.
        mpi_section::raw::job(plan);
        return Ok(());
    }
    forkmap::init()?;
    #[cfg(feature = "mpi")]
    if let Some(plan) = mpi_section::Plan::of_job(mpi_section::POOL_JOB) {
        return mpi_section::pool::job(plan);
    }
    let started = Instant::now();
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = |full: u64, small: u64| if quick { small } else { full };
    let reps = if quick { 1 } else { 5 };
    let rounds = if quick { 3 } else { 5 };

    eprintln!("measuring round trips and tiny tasks, raw and forkmap, in {rounds} rounds…");
    let interleaved = rounds::run(
        rounds,
        rounds::Sizes {
            round_trips: scale(20_000, 1_000) as usize,
            shm_batches: scale(200_000, 5_000) as usize,
            pipe_batches: scale(50_000, 5_000) as usize,
            tiny_items: scale(1_000_000, 50_000),
            tiny_reps: reps.min(3),
        },
    );
    eprintln!("measuring the other cases…");
    let fork8 = raw::fork_eight_ready(scale(50, 3) as usize);
    let memcpy = raw::memcpy(64 << 20);
    let serial_tiny = cases::serial_tiny(scale(1_000_000, 50_000), reps);
    let cpu = cases::cpu_bound(scale(100_000, 2_000), reps.min(3));
    let startup = cases::startup(scale(50, 3) as usize);
    let (payload, payload_bytes) = cases::payload(8, 64 << 20, reps.min(3));
    let idle = cases::idle_cpu(Duration::from_secs(scale(5, 3)));
    let seed = cases::seed(if quick { 1 } else { 3 });
    let memory = cases::memory(scale(100_000, 10_000), scale(10_000_000, 100_000));

    eprintln!("running the Python anchors…");
    let python = python::run(quick);

    eprintln!("running the MPI section…");
    let mpi = mpi_rows(quick);

    let figures = Figures {
        interleaved: &interleaved,
        serial_tiny,
        cpu: &cpu,
        fork8,
        startup,
        memcpy,
        payload,
        payload_bytes,
        idle,
        seed,
        memory: &memory,
    };
    let mut rows = figures.rows();
    match &python {
        Ok(py) => rows.extend(figures.python_rows(py)),
        Err(reason) => eprintln!("Python anchors {reason}"),
    }
    table::print(&rows);
    if let Err(reason) = &python {
        println!("\nPython anchors: {reason}.");
    }
    println!(
        "\nFigures measured in {rounds} interleaved rounds show their median, then \
         their range (min–max)."
    );
    let raw = &interleaved;
    println!(
        "\nraw: shared-memory ping-pong {}, shared-memory ring echo {}, pipe ping-pong {}, \
         pipe batched echo {}, fork of 8 ready {}, memcpy {:.1} GB/s",
        MICROS.spread(raw.shm_ping),
        MEGA.spread(raw.shm_echo),
        MICROS.spread(raw.pipe_ping),
        MEGA.spread(raw.pipe_echo),
        MILLIS.show(fork8.as_secs_f64()),
        memcpy / 1e9
    );
    println!("\n## MPI\n");
    match mpi {
        Ok((rows, note)) => {
            table::print(&rows);
            println!("\n{note}");
        }
        Err(reason) => println!("MPI section: {reason}."),
    }
    println!("\n(this run took {:.0} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// The MPI section's rows and a note under them, or why there are none.
#[cfg(feature = "mpi")]
fn mpi_rows(quick: bool) -> Result<(Vec<Row>, String), String> {
    mpi_section::run(quick)
}

/// Without the `mpi` feature, there is no MPI section.
#[cfg(not(feature = "mpi"))]
fn mpi_rows(_quick: bool) -> Result<(Vec<Row>, String), String> {
    Err(
        "not measured: this program was built without the `mpi` feature \
         (`cargo run --release --features mpi --example compare` runs it, under mpirun)"
            .into(),
    )
}

/// What the main table is made of.
struct Figures<'a> {
    interleaved: &'a rounds::Interleaved,
    serial_tiny: f64,
    cpu: &'a cases::CpuBound,
    fork8: Duration,
    startup: Duration,
    /// Bytes per second.
    memcpy: f64,
    payload: f64,
    payload_bytes: f64,
    /// Percent of one core.
    idle: f64,
    seed: Duration,
    memory: &'a cases::Memory,
}

impl Figures<'_> {
    /// The rows against the machine's limits, rayon and a serial loop.
    fn rows(&self) -> Vec<Row> {
        let Figures {
            interleaved: raw,
            cpu,
            memory,
            ..
        } = self;
        let (latency, tiny) = (raw.latency, raw.tiny);
        let ours = cpu.serial.as_secs_f64() / cpu.forkmap.as_secs_f64();
        let theirs = cpu.serial.as_secs_f64() / cpu.rayon.as_secs_f64();
        let worst_idle_worker = memory
            .idle_worker_private_kib
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        vec![
            Row::new(
                "latency: warm apply_async(f,(x,)).get() median, vs raw shared-memory ping-pong",
                (MICROS.spread(latency), MICROS.spread(raw.shm_ping)),
                latency.median / raw.shm_ping.median,
                Target::AtMost(20.0),
            ),
            Row::new(
                "latency vs raw pipe ping-pong",
                (MICROS.spread(latency), MICROS.spread(raw.pipe_ping)),
                latency.median / raw.pipe_ping.median,
                Target::Scale,
            ),
            Row::new(
                "tiny tasks: map(x*2), 2 workers, vs raw shared-memory ring echo",
                (MEGA.spread(tiny), MEGA.spread(raw.shm_echo)),
                tiny.median / raw.shm_echo.median,
                Target::AtLeast(0.25),
            ),
            Row::new(
                "tiny tasks vs raw pipe batched echo",
                (MEGA.spread(tiny), MEGA.spread(raw.pipe_echo)),
                tiny.median / raw.pipe_echo.median,
                Target::Scale,
            ),
            Row::new(
                "tiny tasks vs a serial loop in this process",
                (MEGA.spread(tiny), MEGA.show(self.serial_tiny)),
                tiny.median / self.serial_tiny,
                Target::Scale,
            ),
            Row::new(
                "CPU-bound: speed-up over serial, vs rayon's",
                (
                    format!("{ours:.2}×"),
                    format!(
                        "{theirs:.2}× ({} per item)",
                        MICROS.show(cpu.per_item.as_secs_f64())
                    ),
                ),
                ours / theirs,
                Target::AtLeast(0.9),
            ),
            Row::new(
                "start-up: ProcessPool::new(8) to first result, vs raw fork-8-ready",
                (
                    MILLIS.show(self.startup.as_secs_f64()),
                    MILLIS.show(self.fork8.as_secs_f64()),
                ),
                self.startup.as_secs_f64() / self.fork8.as_secs_f64(),
                Target::AtMost(3.0),
            ),
            Row::new(
                "large payloads: 8 × 64 MiB Vec<u8> through map(len), vs memcpy",
                (MB_S.show(self.payload), MB_S.show(self.memcpy)),
                self.payload / self.memcpy,
                Target::AtLeast(0.5),
            ),
            Row::new(
                "large payloads as serde_bytes::ByteBuf, vs memcpy",
                (MB_S.show(self.payload_bytes), MB_S.show(self.memcpy)),
                self.payload_bytes / self.memcpy,
                Target::AtLeast(0.5),
            ),
            Row::new(
                "idle pool CPU: ProcessPool::new(2), warm, its process, server and workers",
                (PERCENT.show(self.idle), PERCENT.show(1.0)),
                self.idle,
                Target::Stated("< 1%", self.idle < 1.0),
            ),
            Row::new(
                "the seed: 10 tasks of 1 s on 5 workers, wall time",
                (
                    SECONDS.show(self.seed.as_secs_f64()),
                    "2.000 s ideal".into(),
                ),
                self.seed.as_secs_f64() / 2.0,
                Target::Stated("≤ 2.010 s", self.seed.as_secs_f64() <= 2.010),
            ),
            Row::new(
                "memory: parent RSS during endless imap, large vs small take",
                (
                    format!("{} kB after {}", memory.after_large_kib, memory.large),
                    format!("{} kB after {}", memory.after_small_kib, memory.small),
                ),
                memory.after_large_kib as f64 / memory.after_small_kib.max(1) as f64,
                Target::Stated(
                    "flat",
                    memory.after_large_kib <= memory.after_small_kib + 2048,
                ),
            ),
            Row::new(
                "memory: an idle worker's own pages (private, beyond the parent's)",
                (format!("{worst_idle_worker} kB"), "2048 kB".into()),
                worst_idle_worker as f64 / 2048.0,
                Target::AtMost(1.0),
            ),
        ]
    }

    /// The rows against Python's pools.
    fn python_rows(&self, py: &python::Python) -> Vec<Row> {
        let (latency, tiny) = (self.interleaved.latency.median, self.interleaved.tiny);
        let mp_payload = py.mp_payload_mb_s * 1e6;
        vec![
            Row::new(
                "latency vs multiprocessing.Pool(2).apply_async().get()",
                (
                    MICROS.spread(self.interleaved.latency),
                    MICROS.show(py.mp_latency_us / 1e6),
                ),
                latency * 1e6 / py.mp_latency_us,
                Target::AtMost(0.03),
            ),
            Row::new(
                "latency vs pathos apipe().get()",
                (
                    MICROS.spread(self.interleaved.latency),
                    MICROS.show(py.pathos_latency_us / 1e6),
                ),
                latency * 1e6 / py.pathos_latency_us,
                Target::Scale,
            ),
            Row::new(
                "tiny tasks vs multiprocessing.Pool(2).map",
                (MEGA.spread(tiny), MEGA.show(py.mp_map)),
                tiny.median / py.mp_map,
                Target::AtLeast(10.0),
            ),
            Row::new(
                "tiny tasks vs pathos ProcessPool(2).map",
                (MEGA.spread(tiny), MEGA.show(py.pathos_map)),
                tiny.median / py.pathos_map,
                Target::Scale,
            ),
            Row::new(
                "start-up vs multiprocessing.Pool(2) to first result",
                (
                    MILLIS.show(self.startup.as_secs_f64()),
                    MILLIS.show(py.mp_startup_s),
                ),
                self.startup.as_secs_f64() / py.mp_startup_s,
                Target::Scale,
            ),
            Row::new(
                "large payloads as Vec<u8> vs multiprocessing.Pool(2).map of bytes",
                (MB_S.show(self.payload), MB_S.show(mp_payload)),
                self.payload / mp_payload,
                Target::AtLeast(10.0),
            ),
            Row::new(
                "large payloads as ByteBuf vs multiprocessing.Pool(2).map of bytes",
                (MB_S.show(self.payload_bytes), MB_S.show(mp_payload)),
                self.payload_bytes / mp_payload,
                Target::AtLeast(10.0),
            ),
            Row::new(
                "the seed vs multiprocessing.Pool.map / pathos",
                (
                    SECONDS.show(self.seed.as_secs_f64()),
                    format!("{:.3} s / {:.3} s", py.mp_seed_s, py.pathos_seed_s),
                ),
                self.seed.as_secs_f64() / py.mp_seed_s,
                Target::AtMost(1.0),
            ),
        ]
    }
}
