//! forkmap beside the machine's limits, rayon, a serial loop and Python's
//! pools, all measured in this one run, printed as one table of figures and
//! ratios against the targets of BENCHMARKS.md.
//!
//! `cargo run --release --example compare` (a few minutes; add `--quick`
//! for a smoke run with small sizes and without Python)

mod cases;
mod processes;
mod python;
mod raw;

use std::time::Duration;

/// The median of some durations.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// One line of the table.
struct Row {
    case: &'static str,
    forkmap: String,
    reference: String,
    ratio: f64,
    target: &'static str,
    met: Option<bool>,
}

fn mega(per_second: f64) -> String {
    format!("{:.1} M/s", per_second / 1e6)
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn main() -> Result<(), forkmap::Error> {
    forkmap::init()?;
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = |full: u64, small: u64| if quick { small } else { full };
    let reps = if quick { 1 } else { 5 };

    eprintln!("measuring the machine's limits…");
    let echo = raw::batched_echo(scale(200_000, 5_000) as usize);
    let ping = raw::ping_pong(scale(20_000, 500) as usize);
    let fork8 = raw::fork_eight_ready(scale(50, 3) as usize);
    let memcpy = raw::memcpy(64 << 20);

    eprintln!("measuring forkmap, rayon and a serial loop…");
    let tiny_n = scale(1_000_000, 50_000);
    let (tiny, serial_tiny) = cases::tiny(tiny_n, reps);
    let latency = cases::latency(scale(20_000, 500) as usize);
    let cpu = cases::cpu_bound(scale(100_000, 2_000), reps.min(3));
    let startup = cases::startup(scale(50, 3) as usize);
    let (payload, payload_bytes) = cases::payload(8, 64 << 20, reps.min(3));
    let seed = cases::seed(if quick { 1 } else { 3 });
    let memory = cases::memory(scale(100_000, 10_000), scale(10_000_000, 100_000));

    eprintln!("running the Python anchors…");
    let python = python::run(quick);

    let mut rows = vec![
        Row {
            case: "tiny tasks: map(x*2), 2 workers, vs raw batched echo",
            forkmap: mega(tiny),
            reference: mega(echo),
            ratio: tiny / echo,
            target: "≥ 0.25",
            met: Some(tiny / echo >= 0.25),
        },
        Row {
            case: "tiny tasks vs a serial loop in this process",
            forkmap: mega(tiny),
            reference: mega(serial_tiny),
            ratio: tiny / serial_tiny,
            target: "(for scale)",
            met: None,
        },
        Row {
            case: "latency: warm apply_async().get() median, vs raw ping-pong",
            forkmap: micros(latency),
            reference: micros(ping),
            ratio: latency.as_secs_f64() / ping.as_secs_f64(),
            target: "≤ 2",
            met: Some(latency.as_secs_f64() <= 2.0 * ping.as_secs_f64()),
        },
        {
            let ours = cpu.serial.as_secs_f64() / cpu.forkmap.as_secs_f64();
            let theirs = cpu.serial.as_secs_f64() / cpu.rayon.as_secs_f64();
            Row {
                case: "CPU-bound: speed-up over serial, vs rayon's",
                forkmap: format!("{ours:.2}×"),
                reference: format!("{theirs:.2}× ({} per item)", micros(cpu.per_item)),
                ratio: ours / theirs,
                target: "≥ 0.9",
                met: Some(ours / theirs >= 0.9),
            }
        },
        Row {
            case: "start-up: ProcessPool::new(8) to first result, vs raw fork-8-ready",
            forkmap: millis(startup),
            reference: millis(fork8),
            ratio: startup.as_secs_f64() / fork8.as_secs_f64(),
            target: "≤ 3",
            met: Some(startup.as_secs_f64() <= 3.0 * fork8.as_secs_f64()),
        },
        Row {
            case: "large payloads: 8 × 64 MiB Vec<u8> through map(len), vs memcpy",
            forkmap: format!("{:.0} MB/s", payload / 1e6),
            reference: format!("{:.0} MB/s", memcpy / 1e6),
            ratio: payload / memcpy,
            target: "stretch ≥ 0.5",
            met: Some(payload / memcpy >= 0.5),
        },
        Row {
            case: "large payloads as serde_bytes::ByteBuf, vs memcpy",
            forkmap: format!("{:.0} MB/s", payload_bytes / 1e6),
            reference: format!("{:.0} MB/s", memcpy / 1e6),
            ratio: payload_bytes / memcpy,
            target: "stretch ≥ 0.5",
            met: Some(payload_bytes / memcpy >= 0.5),
        },
        Row {
            case: "the seed: 10 tasks of 1 s on 5 workers, wall time",
            forkmap: format!("{:.3} s", seed.as_secs_f64()),
            reference: "2.000 s ideal".into(),
            ratio: seed.as_secs_f64() / 2.0,
            target: "≤ 2.010 s",
            met: Some(seed.as_secs_f64() <= 2.010),
        },
        Row {
            case: "memory: parent RSS during endless imap, large vs small take",
            forkmap: format!("{} kB after {}", memory.after_large_kib, memory.large),
            reference: format!("{} kB after {}", memory.after_small_kib, memory.small),
            ratio: memory.after_large_kib as f64 / memory.after_small_kib.max(1) as f64,
            target: "flat",
            met: Some(memory.after_large_kib <= memory.after_small_kib + 2048),
        },
        {
            let worst = memory
                .idle_worker_private_kib
                .iter()
                .copied()
                .max()
                .unwrap_or(0);
            Row {
                case: "memory: an idle worker's own pages (private, beyond the parent's)",
                forkmap: format!("{worst} kB"),
                reference: "2048 kB".into(),
                ratio: worst as f64 / 2048.0,
                target: "≤ 1",
                met: Some(worst <= 2048),
            }
        },
    ];
    match &python {
        Ok(py) => {
            rows.extend([
                Row {
                    case: "tiny tasks vs multiprocessing.Pool(2).map",
                    forkmap: mega(tiny),
                    reference: mega(py.mp_map),
                    ratio: tiny / py.mp_map,
                    target: "≥ 10",
                    met: Some(tiny / py.mp_map >= 10.0),
                },
                Row {
                    case: "tiny tasks vs pathos ProcessPool(2).map",
                    forkmap: mega(tiny),
                    reference: mega(py.pathos_map),
                    ratio: tiny / py.pathos_map,
                    target: "(for scale)",
                    met: None,
                },
                Row {
                    case: "latency vs multiprocessing.Pool(2).apply_async().get()",
                    forkmap: micros(latency),
                    reference: format!("{:.1} µs", py.mp_latency_us),
                    ratio: latency.as_secs_f64() * 1e6 / py.mp_latency_us,
                    target: "≤ 0.3",
                    met: Some(latency.as_secs_f64() * 1e6 <= 0.3 * py.mp_latency_us),
                },
                Row {
                    case: "latency vs pathos apipe().get()",
                    forkmap: micros(latency),
                    reference: format!("{:.1} µs", py.pathos_latency_us),
                    ratio: latency.as_secs_f64() * 1e6 / py.pathos_latency_us,
                    target: "(for scale)",
                    met: None,
                },
                Row {
                    case: "start-up vs multiprocessing.Pool(2) to first result",
                    forkmap: millis(startup),
                    reference: format!("{:.2} ms", py.mp_startup_s * 1e3),
                    ratio: startup.as_secs_f64() / py.mp_startup_s,
                    target: "(for scale)",
                    met: None,
                },
                Row {
                    case: "large payloads as Vec<u8> vs multiprocessing.Pool(2).map of bytes",
                    forkmap: format!("{:.0} MB/s", payload / 1e6),
                    reference: format!("{:.0} MB/s", py.mp_payload_mb_s),
                    ratio: payload / 1e6 / py.mp_payload_mb_s,
                    target: "≥ 4",
                    met: Some(payload / 1e6 >= 4.0 * py.mp_payload_mb_s),
                },
                Row {
                    case: "large payloads as ByteBuf vs multiprocessing.Pool(2).map of bytes",
                    forkmap: format!("{:.0} MB/s", payload_bytes / 1e6),
                    reference: format!("{:.0} MB/s", py.mp_payload_mb_s),
                    ratio: payload_bytes / 1e6 / py.mp_payload_mb_s,
                    target: "≥ 4",
                    met: Some(payload_bytes / 1e6 >= 4.0 * py.mp_payload_mb_s),
                },
                Row {
                    case: "the seed vs multiprocessing.Pool.map / pathos",
                    forkmap: format!("{:.3} s", seed.as_secs_f64()),
                    reference: format!("{:.3} s / {:.3} s", py.mp_seed_s, py.pathos_seed_s),
                    ratio: seed.as_secs_f64() / py.mp_seed_s,
                    target: "≤ 1",
                    met: Some(seed.as_secs_f64() <= py.mp_seed_s),
                },
            ]);
        }
        Err(reason) => eprintln!("Python anchors {reason}"),
    }

    println!("| case | forkmap | reference | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {:.3} | {} | {met} |",
            row.case, row.forkmap, row.reference, row.ratio, row.target
        );
    }
    if let Err(reason) = &python {
        println!("\nPython anchors: {reason}.");
    }
    println!(
        "\nraw: pipe ping-pong {}, batched echo {}, fork of 8 ready {}, memcpy {:.1} GB/s",
        micros(ping),
        mega(echo),
        millis(fork8),
        memcpy / 1e9
    );
    Ok(())
}
