//! The `tracing` feature: a span per call, and events for the workers'
//! lives, seen by a subscriber as a user's would see them.
//! `cargo test --features tracing --test test_tracing`.

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use forkmap::ProcessPool;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    /// Its message and fields: `message=... worker=1 death=...`.
    fields: String,
    /// The spans it is in, innermost first: `call{function=... items=10}`.
    spans: Vec<String>,
}

impl Seen {
    fn says(&self, what: &str) -> bool {
        self.fields.contains(what)
    }

    fn in_call_of(&self, function: &str) -> bool {
        self.spans
            .iter()
            .any(|span| span.starts_with("call{") && span.contains(function))
    }
}

/// Every field as `name=value`, space-separated.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, "{}={} ", field.name(), value);
    }
}

struct Collect;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let span = ctx.span(id).expect("a new span exists");
        let text = format!("{}{{{}}}", span.name(), fields.0.trim_end());
        span.extensions_mut().insert(text);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .filter_map(|span| span.extensions().get::<String>().cloned())
                    .collect()
            })
            .unwrap_or_default();
        seen().push(Seen {
            level: *event.metadata().level(),
            fields: fields.0,
            spans,
        });
    }
}

fn seen() -> MutexGuard<'static, Vec<Seen>> {
    static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
    SEEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the subscriber once for the whole binary (the dispatcher's
/// events come from its own thread), and runs the tests one at a time so
/// that each sees its own events.
fn traced() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Collect))
            .expect("no other subscriber");
    });
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    seen().clear();
    guard
}

/// The events seen so far that match.
fn events(filter: impl Fn(&Seen) -> bool) -> Vec<Seen> {
    seen().iter().filter(|e| filter(e)).cloned().collect()
}

fn traced_square(x: u64) -> u64 {
    x * x
}

fn exits_at_three(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x
}

fn naps(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn grows(mib: usize) -> usize {
    let mut kept = Vec::new();
    for _ in 0..mib {
        kept.push(vec![1u8; 1 << 20]);
        std::thread::sleep(Duration::from_millis(1));
    }
    kept.len()
}

#[test]
fn a_call_has_a_span_naming_its_function_items_chunk_size_and_pool() {
    let _guard = traced();
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(
        pool.with_chunk_size(3)
            .map(traced_square, 0..10u64)
            .unwrap()[9],
        81
    );
    // Per chunk, in the dispatcher's thread, at trace level, in the span.
    let chunks = events(|e| e.says("chunk handed to a worker") && e.in_call_of("traced_square"));
    assert_eq!(chunks.len(), 4, "{chunks:#?}");
    assert!(chunks.iter().all(|e| e.level == Level::TRACE));
    let span = &chunks[0].spans[0];
    for field in ["items=10", "chunk_size=3", "pool=process"] {
        assert!(span.contains(field), "{span} lacks {field}");
    }
    let replies = events(|e| e.says("reply from a worker") && e.in_call_of("traced_square"));
    assert!(!replies.is_empty() && replies.iter().all(|e| e.level == Level::TRACE));
    // The pool's workers started, at debug level.
    let started = events(|e| e.says("worker started"));
    assert!(started.len() >= 2 && started.iter().all(|e| e.level == Level::DEBUG));
}

#[test]
fn a_worker_s_death_is_a_warning_with_its_cause_and_its_replacement_follows() {
    let _guard = traced();
    let pool = ProcessPool::new(2).unwrap();
    let err = pool.map(exits_at_three, 0..6u64).unwrap_err();
    assert!(err.is_worker_death(), "{err}");
    let deaths = events(|e| e.says("a worker died"));
    assert_eq!(deaths.len(), 1, "{deaths:#?}");
    let death = &deaths[0];
    assert_eq!(death.level, Level::WARN);
    assert!(death.says("death=exited with code 3"), "{death:?}");
    assert!(death.says("item=3"), "{death:?}");
    assert!(death.in_call_of("exits_at_three"), "{death:?}");
    let replaced = events(|e| e.says("worker replaced") && e.in_call_of("exits_at_three"));
    assert_eq!(replaced.len(), 1, "{replaced:#?}");
    assert_eq!(replaced[0].level, Level::INFO);
    // A worker that ends closes its bell too: that is no sabotage.
    assert!(events(|e| e.says("closed or replaced")).is_empty());
}

fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn a_worker_killed_while_idle_is_a_death_and_nothing_else() {
    let _guard = traced();
    let pool = ProcessPool::new(1).unwrap();
    let pid = pool.apply(worker_pid, (0,)).unwrap();
    // SAFETY: `kill` takes a pid and a signal number, touching no memory.
    unsafe { nix::libc::kill(pid as nix::libc::pid_t, nix::libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while events(|e| e.says("a worker died")).is_empty() {
        assert!(std::time::Instant::now() < deadline, "{:#?}", seen());
        std::thread::sleep(Duration::from_millis(10));
    }
    let deaths = events(|e| e.says("a worker died"));
    assert_eq!(deaths[0].level, Level::WARN);
    assert!(deaths[0].says("death=was killed by signal 9"), "{deaths:?}");
    assert!(events(|e| e.says("closed or replaced")).is_empty());
    assert_ne!(pool.apply(worker_pid, (0,)).unwrap(), pid);
}

#[test]
fn a_timeout_kill_is_a_warning_in_the_call_s_span() {
    let _guard = traced();
    let pool = ProcessPool::new(1).unwrap();
    let hurried = pool.with_timeout(Duration::from_millis(200));
    assert!(hurried.apply(naps, (60_000,)).unwrap_err().is_timeout());
    let kills = events(|e| e.says("ran past its timeout"));
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].level, Level::WARN);
    assert!(
        kills[0].says("item=0") && kills[0].says("timeout=200ms"),
        "{kills:?}"
    );
    assert!(kills[0].in_call_of("naps"), "{kills:?}");
    // Its end is no second warning: the kill said it.
    assert!(events(|e| e.says("a worker died")).is_empty());
    assert!(events(|e| e.says("closed or replaced")).is_empty());
}

#[test]
fn a_memory_limit_kill_is_a_warning_in_the_call_s_span() {
    let _guard = traced();
    let pool = ProcessPool::builder()
        .workers(1)
        .memory_limit(64 << 20)
        .build()
        .unwrap();
    assert!(pool.apply(grows, (2048,)).unwrap_err().is_out_of_memory());
    let kills = events(|e| e.says("grew past the memory limit"));
    assert_eq!(kills.len(), 1, "{kills:#?}");
    assert_eq!(kills[0].level, Level::WARN);
    assert!(kills[0].says(&format!("limit={}", 64 << 20)), "{kills:?}");
    assert!(kills[0].in_call_of("grows"), "{kills:?}");
}

#[test]
fn a_pool_s_end_ends_its_workers_at_debug_level() {
    let _guard = traced();
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.apply(traced_square, (3,)).unwrap(), 9);
    drop(pool);
    let ended = events(|e| e.says("worker ended with its pool"));
    assert_eq!(ended.len(), 2, "{ended:#?}");
    assert!(ended.iter().all(|e| e.level == Level::DEBUG));
}
