//! Dropping a pool leaves no child process and no open descriptor behind.
//! One test in its own binary, so no other pool shares the process table.

use std::collections::HashSet;
use std::fs;

use forkmap::ProcessPool;

/// The processes whose parent is this process, zombies included, read from
/// the process table.
fn children() -> HashSet<u32> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // The parent pid is the second field after the command name,
            // which is in parentheses and may itself hold spaces.
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name
                .split(' ')
                .nth(1)
                .and_then(|ppid| ppid.parse::<u32>().ok())
                == Some(me)
        })
        .collect()
}

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn dropping_pools_leaves_no_child_and_no_descriptor() {
    let fds_before = open_descriptors();
    assert_eq!(children(), HashSet::new(), "children before any pool");
    for _ in 0..20 {
        let pool = ProcessPool::new(4).unwrap();
        let served: HashSet<u32> = pool
            .map(worker_pid, 0..64u64)
            .unwrap()
            .into_iter()
            .collect();
        let alive = children();
        assert_eq!(alive.len(), 4, "a live pool of 4 has 4 children: {alive:?}");
        assert!(
            served.is_subset(&alive),
            "results came from {served:?}, children are {alive:?}"
        );
        // A worker that died mid-call is reaped and replaced, not leaked.
        let _ = pool.apply(|| -> u8 { std::process::exit(1) }, ());
        assert_eq!(children().len(), 4);
        drop(pool);
        assert_eq!(
            children(),
            HashSet::new(),
            "children after the pool was dropped"
        );
    }
    assert_eq!(open_descriptors(), fds_before, "descriptors after 20 pools");
}
