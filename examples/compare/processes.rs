//! Processes as `/proc` shows them: this program's children and workers,
//! a process's memory, and the CPU time a group of processes used.

use std::collections::HashMap;
use std::time::Instant;

use nix::unistd::{sysconf, SysconfVar};

/// A field of `/proc/self/status`, in kB.
pub(crate) fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The worker processes of this program's pools: the children of its fork
/// server, or its own children when it has none.
pub(crate) fn workers() -> Vec<u32> {
    let children = children_of(std::process::id());
    let grandchildren: Vec<u32> = children.iter().flat_map(|&pid| children_of(pid)).collect();
    if grandchildren.is_empty() {
        children
    } else {
        grandchildren
    }
}

/// The fields of `/proc/<pid>/stat` after the command's name: the state is
/// field 0, the parent's pid field 1.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    // The state is a letter: it reads as 0, which no caller uses.
    Some(
        after_name
            .split(' ')
            .map(|field| field.trim().parse().unwrap_or(0))
            .collect(),
    )
}

/// Every process and its parent.
fn parents() -> Vec<(u32, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, *stat_fields(pid)?.get(1)? as u32)))
        .collect()
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    parents()
        .into_iter()
        .filter(|&(_, of)| of == parent)
        .map(|(pid, _)| pid)
        .collect()
}

/// `root` and every process descended from it.
pub(crate) fn family(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut family = vec![root];
    let mut next = 0;
    while next < family.len() {
        let parent = family[next];
        family.extend(
            parents
                .iter()
                .filter(|&&(_, of)| of == parent)
                .map(|&(pid, _)| pid),
        );
        next += 1;
    }
    family
}

/// A process's private memory (`Private_Clean` + `Private_Dirty` of
/// `smaps_rollup`), in kB.
pub(crate) fn private_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> u64 {
        rollup
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Some(field("Private_Clean:") + field("Private_Dirty:"))
}

/// The CPU time some processes had used at one moment: user and system
/// time of every thread of each, in clock ticks.
pub(crate) struct CpuTimes {
    at: Instant,
    ticks: HashMap<u32, u64>,
}

impl CpuTimes {
    /// The CPU time `pids` have used so far.
    pub(crate) fn of(pids: &[u32]) -> Self {
        let ticks = pids
            .iter()
            .filter_map(|&pid| {
                let fields = stat_fields(pid)?;
                // utime and stime: fields 14 and 15 of the whole line.
                Some((pid, fields.get(11)? + fields.get(12)?))
            })
            .collect();
        CpuTimes {
            at: Instant::now(),
            ticks,
        }
    }

    /// The CPU time used between `earlier` and this, as a percentage of
    /// one core: by the processes of both, and all of that of processes
    /// new in this one.
    pub(crate) fn percent_since(&self, earlier: &CpuTimes) -> f64 {
        let used: u64 = self
            .ticks
            .iter()
            .map(|(pid, &now)| now.saturating_sub(earlier.ticks.get(pid).copied().unwrap_or(0)))
            .sum();
        let per_second = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100.0, |ticks| ticks as f64);
        let seconds = self.at.duration_since(earlier.at).as_secs_f64();
        100.0 * used as f64 / per_second / seconds
    }
}
