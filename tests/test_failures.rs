//! A task that panics or kills its worker fails that item only; the pool
//! lives on.

use forkmap::{Death, Error, ProcessPool};

fn panics_at_seven(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is unlucky");
    }
    x
}

fn exits_at_three(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x
}

#[test]
fn a_panic_names_the_item_and_the_next_call_succeeds() {
    let pool = ProcessPool::new(2).unwrap();
    let err = pool.map(panics_at_seven, 0..20u64).unwrap_err();
    assert!(err.is_panic(), "{err}");
    assert_eq!(err.index(), Some(7));
    assert!(err.function().unwrap().contains("panics_at_seven"), "{err}");
    let message = err.to_string();
    assert!(message.contains("seven is unlucky"), "{message}");
    assert!(
        message.contains("test_failures.rs"),
        "the location is missing: {message}"
    );
    assert_eq!(pool.map(panics_at_seven, 0..5u64).unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn a_panic_in_apply_async_comes_back_from_get() {
    let pool = ProcessPool::new(1).unwrap();
    let err = pool.apply_async(panics_at_seven, (7,)).get().unwrap_err();
    let Error::Panic { index, panic, .. } = err else {
        panic!("not a panic: {err}")
    };
    assert_eq!(index, 0);
    assert_eq!(panic.message, "seven is unlucky");
}

#[test]
fn a_worker_that_exits_fails_its_item_and_is_replaced() {
    let pool = ProcessPool::new(2).unwrap();
    let err = pool.map(exits_at_three, 0..8u64).unwrap_err();
    assert!(err.is_worker_death(), "{err}");
    assert_eq!(err.index(), Some(3));
    assert!(
        matches!(
            err,
            Error::Incomplete {
                completed: 7,
                failed: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        matches!(
            err.item_error(),
            Error::WorkerDied {
                death: Death::Exit(3),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(pool.map(exits_at_three, 4..8u64).unwrap(), [4, 5, 6, 7]);
}

#[test]
fn a_worker_that_aborts_is_reported_by_signal() {
    let pool = ProcessPool::new(1).unwrap();
    let err = pool
        .apply(|| -> u8 { std::process::abort() }, ())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::WorkerDied {
                death: Death::Signal(6),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("SIGABRT"), "{err}");
    assert_eq!(pool.apply(|| 1u8, ()).unwrap(), 1);
}

fn exits_at_37(x: u64) -> u64 {
    if x == 37 {
        std::process::exit(37);
    }
    x * 2
}

#[test]
fn a_death_in_the_middle_of_a_chunk_fails_only_the_item_it_was_running() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(100)
        .build()
        .unwrap();
    let results: Vec<_> = pool.imap(exits_at_37, 0..300u64).collect();
    assert_eq!(results.len(), 300);
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, index as u64 * 2),
            Err(err) => {
                assert_eq!(index, 37, "only item 37 fails: {err}");
                assert!(
                    matches!(
                        err,
                        Error::WorkerDied {
                            index: 37,
                            death: Death::Exit(37),
                            ..
                        }
                    ),
                    "{err}"
                );
            }
        }
    }
    assert!(results[37].is_err());
}

/// Leaves a mark for its item in `dir`, and aborts the worker on item 3.
fn mark_or_abort_at_3((dir, x): (String, u64)) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    std::fs::write(format!("{dir}/{x}"), b"").unwrap();
    x
}

#[test]
fn a_dropped_handles_items_still_run_after_a_death_and_join_returns() {
    let dir = std::env::temp_dir().join(format!("forkmap-detached-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.to_string_lossy().into_owned();
    let (done, finished) = std::sync::mpsc::channel();
    let thread_path = path.clone();
    std::thread::spawn(move || {
        let pool = ProcessPool::builder()
            .workers(1)
            .chunk_size(10)
            .build()
            .unwrap();
        let items: Vec<(String, u64)> = (0..10).map(|x| (thread_path.clone(), x)).collect();
        drop(pool.map_async(mark_or_abort_at_3, items));
        pool.join();
        let _ = done.send(());
    });
    let joined = finished.recv_timeout(std::time::Duration::from_secs(30));
    let marks = std::fs::read_dir(&dir).unwrap().count();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(joined.is_ok(), "join did not return after a worker's death");
    assert_eq!(marks, 9, "every item but the one that aborted ran");
}

/// An argument whose decoding panics for 5.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Touchy(u64);

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        assert!(value != 5, "five does not decode");
        Ok(Touchy(value))
    }
}

/// A result whose encoding panics for 5.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
struct Loud(u64);

impl serde::Serialize for Loud {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        assert!(self.0 != 5, "five does not encode");
        serializer.serialize_u64(self.0)
    }
}

fn touchy_value(touchy: Touchy) -> u64 {
    touchy.0
}

fn loud(x: u64) -> Loud {
    Loud(x)
}

#[test]
fn a_panic_while_arguments_decode_is_that_items_failure_not_a_death() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(10)
        .build()
        .unwrap();
    let results: Vec<_> = pool.imap(touchy_value, (0..10).map(Touchy)).collect();
    for (index, result) in results.iter().enumerate().take(5) {
        assert_eq!(result.as_ref().ok(), Some(&(index as u64)));
    }
    let err = results[5].as_ref().unwrap_err();
    assert!(err.to_string().contains("five does not decode"), "{err}");
    for result in &results[5..] {
        let err = result.as_ref().unwrap_err();
        assert!(
            matches!(err, Error::Codec { .. }),
            "the rest of the chunk cannot be read: {err}"
        );
    }
    assert_eq!(pool.map(touchy_value, [Touchy(1)]).unwrap(), [1]);
}

#[test]
fn a_panic_while_a_result_encodes_fails_that_item_only() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(10)
        .build()
        .unwrap();
    let results: Vec<_> = pool.imap(loud, 0..10u64).collect();
    for (index, result) in results.iter().enumerate() {
        if index == 5 {
            let err = result.as_ref().unwrap_err();
            assert!(err.is_panic(), "{err}");
            assert!(err.to_string().contains("five does not encode"), "{err}");
        } else {
            assert_eq!(result.as_ref().ok(), Some(&Loud(index as u64)));
        }
    }
}

/// Runs a pool of its own inside the worker.
fn nested(x: u64) -> u64 {
    let threads = forkmap::ThreadPool::new(2).unwrap();
    let processes = ProcessPool::new(2).unwrap();
    threads.map(|y: u64| y + 1, [x]).unwrap()[0] + processes.apply(|y: u64| y * 10, (x,)).unwrap()
}

#[test]
fn a_task_can_run_pools_of_its_own() {
    let pool = ProcessPool::new(2).unwrap();
    let results = pool
        .with_timeout(std::time::Duration::from_secs(20))
        .map(nested, 0..3u64)
        .unwrap();
    assert_eq!(results, [1, 12, 23]);
}

/// Set in the child run by [`a_panic_carries_the_workers_backtrace_when_asked`].
const BACKTRACE_CHILD: &str = "FORKMAP_TEST_BACKTRACE_CHILD";

/// In the child: prints the `{:?}` of a panic's error; elsewhere, nothing.
#[test]
fn print_a_panics_error() {
    if std::env::var_os(BACKTRACE_CHILD).is_none() {
        return;
    }
    let pool = ProcessPool::new(1).unwrap();
    let err = pool.apply(panics_at_seven, (7,)).unwrap_err();
    println!("ERROR: {err:?}");
}

/// Runs [`print_a_panics_error`] in a child with `RUST_BACKTRACE` as given,
/// and returns what it printed for the error.
fn debug_of_a_panic(rust_backtrace: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "print_a_panics_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BACKTRACE_CHILD, "1")
        .env("RUST_BACKTRACE", rust_backtrace)
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    stdout
        .lines()
        .find_map(|line| line.split_once("ERROR: ").map(|(_, error)| error))
        .unwrap_or_else(|| panic!("the child printed no error: {stdout}"))
        .to_owned()
}

#[test]
fn a_panic_carries_the_workers_backtrace_when_asked() {
    let with = debug_of_a_panic("1");
    assert!(with.contains("backtrace: Some("), "{with}");
    // The frame of the function that panicked, in the worker.
    assert!(with.contains("panics_at_seven"), "{with}");
    let without = debug_of_a_panic("0");
    assert!(without.contains("backtrace: None"), "{without}");
}
