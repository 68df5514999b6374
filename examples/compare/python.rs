//! The Python peers, measured in the same run by the anchor scripts in
//! `shared/anchors/python`, when Python has pathos, loky, numpy and psutil.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The figures the comparison uses.
pub(crate) struct Python {
    /// Items per second of `map(x * 2)` over ints on 2 workers.
    pub(crate) mp_map: f64,
    pub(crate) pathos_map: f64,
    /// Median microseconds of a warm `apply_async(f, (1,)).get()`.
    pub(crate) mp_latency_us: f64,
    pub(crate) pathos_latency_us: f64,
    /// Seconds from a 2-worker pool's start to its first result.
    pub(crate) mp_startup_s: f64,
    /// MB per second of 8 × 50 MB `bytes` through `map(len)`.
    pub(crate) mp_payload_mb_s: f64,
    /// Seconds of the seed's program.
    pub(crate) mp_seed_s: f64,
    pub(crate) pathos_seed_s: f64,
}

/// Where the anchor scripts are: `FORKMAP_ANCHORS`, or `shared/anchors/python`
/// beside this checkout.
fn anchors() -> Option<PathBuf> {
    let dir = match std::env::var_os("FORKMAP_ANCHORS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/anchors/python"),
    };
    dir.join("throughput.py").exists().then_some(dir)
}

/// Runs the anchors, or says why they were skipped.
pub(crate) fn run(quick: bool) -> Result<Python, String> {
    if quick {
        return Err("skipped in --quick mode".into());
    }
    let dir = anchors().ok_or("skipped: no anchor scripts (set FORKMAP_ANCHORS)")?;
    let probe = Command::new("python3")
        .args(["-c", "import pathos, loky, numpy, psutil"])
        .output()
        .map_err(|e| format!("skipped: no python3 ({e})"))?;
    if !probe.status.success() {
        return Err("skipped: python3 lacks pathos, loky, numpy or psutil \
                    (pip install pathos loky numpy psutil)"
            .into());
    }
    let scratch = std::env::temp_dir().join(format!("forkmap-anchors-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let script = |name: &str, args: &[&str]| -> Result<Value, String> {
        eprintln!("  python3 {name} {}", args.join(" "));
        let status = Command::new("python3")
            .arg(dir.join(format!("{name}.py")))
            .args(args)
            .current_dir(&scratch)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{name}.py failed: {status}"));
        }
        let results = match name {
            "seed_examples" => "results_seed.json".to_owned(),
            other => format!("results_{other}.json"),
        };
        let text = std::fs::read_to_string(scratch.join(results)).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let throughput = script("throughput", &["--quick"])?;
    let latency = script("latency", &["2000"])?;
    let payload = script("payload", &[])?;
    let seed = script("seed_examples", &[])?;
    let _ = std::fs::remove_dir_all(&scratch);
    let number = |value: &Value, path: &[&str]| -> Result<f64, String> {
        path.iter()
            .try_fold(value, |value, key| value.get(key))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("no {} in the anchors' results", path.join(" / ")))
    };
    Ok(Python {
        mp_map: number(
            &throughput,
            &[
                "throughput",
                "mp.Pool(2).map default chunksize",
                "items_per_s",
            ],
        )?,
        pathos_map: number(
            &throughput,
            &[
                "throughput",
                "pathos.ProcessPool(2).map(lambda) default chunksize",
                "items_per_s",
            ],
        )?,
        mp_latency_us: number(
            &latency,
            &["mp.Pool(2).apply_async(f,(1,)).get()", "median_us"],
        )?,
        pathos_latency_us: number(
            &latency,
            &["pathos ProcessPool(2).apipe(f,1).get()", "median_us"],
        )?,
        mp_startup_s: number(&throughput, &["startup_s", "mp.Pool(2) [fork]"])?,
        mp_payload_mb_s: number(&payload, &["mp.Pool(2).map [bytes]", "MB_per_s"])?,
        mp_seed_s: number(&seed, &["mp.Pool.map", "median_s"])?,
        pathos_seed_s: number(
            &seed,
            &["pathos.ProcessPool.map(factory closure)", "median_s"],
        )?,
    })
}
