//! A task's panic carries the worker's backtrace when `RUST_BACKTRACE` asks
//! for one, and none otherwise.

use forkmap::ProcessPool;

fn panics_at_seven(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is not allowed");
    }
    x
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
