//! `#[remote]` factories run through a real `ProcessPool`: arguments of every
//! serde kind, per-worker state built before the closure, closures of every
//! arity and result, `FnMut` state, visibility and attributes, same-named
//! factories, local use (`call`, `into_closure`, `Clone`, `Debug`), and the
//! `crate = ...` and `name = ...` options.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use forkmap::{remote, ProcessPool};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Arguments of every serde kind.

/// One value of every integer type.
type IntTuple = (
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
);

#[remote]
#[allow(clippy::too_many_arguments)]
fn integers(
    a: i8,
    b: i16,
    c: i32,
    d: i64,
    e: i128,
    f: isize,
    g: u8,
    h: u16,
    i: u32,
    j: u64,
    k: u128,
    l: usize,
) -> impl Fn(u8) -> IntTuple {
    move |_| (a, b, c, d, e, f, g, h, i, j, k, l)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    weights: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Mode {
    Add(i64),
    Mul { by: i64 },
    Skip,
}

/// Everything `others` received, sent back as one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echo {
    f32: f32,
    f64: f64,
    flag: bool,
    letter: char,
    text: String,
    list: Vec<u16>,
    hash: HashMap<String, u32>,
    tree: BTreeMap<u8, Vec<String>>,
    some: Option<u32>,
    none: Option<String>,
    tuple: (u8, String, bool),
    config: Config,
    mode: Mode,
    applied: i64,
}

#[remote]
#[allow(clippy::too_many_arguments)]
fn others(
    f32: f32,
    f64: f64,
    flag: bool,
    letter: char,
    text: String,
    list: Vec<u16>,
    hash: HashMap<String, u32>,
    tree: BTreeMap<u8, Vec<String>>,
    some: Option<u32>,
    none: Option<String>,
    tuple: (u8, String, bool),
    config: Config,
    mode: Mode,
) -> impl Fn(i64) -> Echo {
    move |x| Echo {
        f32,
        f64,
        flag,
        letter,
        text: text.clone(),
        list: list.clone(),
        hash: hash.clone(),
        tree: tree.clone(),
        some,
        none: none.clone(),
        tuple: tuple.clone(),
        config: config.clone(),
        mode: mode.clone(),
        applied: match mode {
            Mode::Add(n) => x + n,
            Mode::Mul { by } => x * by,
            Mode::Skip => x,
        },
    }
}

#[test]
fn arguments_of_every_serde_kind_reach_the_workers_unchanged() {
    let pool = ProcessPool::new(2).unwrap();

    let ints: IntTuple = (
        i8::MIN,
        -1234i16,
        i32::MAX,
        i64::MIN + 1,
        i128::MIN,
        isize::MAX,
        u8::MAX,
        65_000u16,
        u32::MAX - 7,
        u64::MAX,
        u128::MAX - 3,
        usize::MAX / 3,
    );
    let (a, b, c, d, e, f, g, h, i, j, k, l) = ints;
    let out = pool
        .map(integers(a, b, c, d, e, f, g, h, i, j, k, l), 0..3u8)
        .unwrap();
    assert_eq!(out, [ints; 3]);

    let hash: HashMap<String, u32> = [("one".to_owned(), 1), ("two".to_owned(), 2)].into();
    let tree: BTreeMap<u8, Vec<String>> = [
        (3, vec!["c".to_owned()]),
        (1, vec![]),
        (2, vec!["a".into(), "b".into()]),
    ]
    .into();
    let config = Config {
        name: "cfg".to_owned(),
        weights: vec![-1, 0, 1],
    };
    for (mode, applied) in [
        (Mode::Add(5), 15),
        (Mode::Mul { by: -3 }, -30),
        (Mode::Skip, 10),
    ] {
        let expected = Echo {
            f32: -1.5e-7,
            f64: std::f64::consts::PI,
            flag: true,
            letter: '☃',
            text: "héllo\nworld".to_owned(),
            list: vec![0, 1, u16::MAX],
            hash: hash.clone(),
            tree: tree.clone(),
            some: Some(7),
            none: None,
            tuple: (9, "nine".to_owned(), false),
            config: config.clone(),
            mode: mode.clone(),
            applied,
        };
        let factory = others(
            expected.f32,
            expected.f64,
            expected.flag,
            expected.letter,
            expected.text.clone(),
            expected.list.clone(),
            expected.hash.clone(),
            expected.tree.clone(),
            expected.some,
            expected.none.clone(),
            expected.tuple.clone(),
            expected.config.clone(),
            mode,
        );
        let out = pool.map(factory, [10, 10, 10, 10]).unwrap();
        assert_eq!(out, vec![expected; 4]);
    }
}

// ---------------------------------------------------------------------------
// Statements before the closure run once per worker per call.

static BUILDS: AtomicU64 = AtomicU64::new(0);

#[remote]
fn builds() -> impl Fn(u64) -> (u32, u64) {
    BUILDS.fetch_add(1, Ordering::SeqCst);
    move |_| (std::process::id(), BUILDS.load(Ordering::SeqCst))
}

#[test]
fn statements_before_the_closure_run_once_per_worker_per_call() {
    let pool = ProcessPool::new(1).unwrap();
    let first: Vec<u64> = pool
        .map(builds(), 0..20)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(first, [1; 20]);
    let second: Vec<u64> = pool
        .map(builds(), 0..20)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(second, [2; 20]);
    // The parent never ran the body.
    assert_eq!(BUILDS.load(Ordering::SeqCst), 0);

    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(5)
        .build()
        .unwrap();
    for _ in 0..3 {
        let out = pool.map(builds(), 0..100).unwrap();
        let mut seen: HashMap<u32, u64> = HashMap::new();
        for (pid, n) in out {
            assert_ne!(pid, std::process::id());
            assert!(n >= 1);
            let first = *seen.entry(pid).or_insert(n);
            assert_eq!(first, n, "worker {pid} saw its setup run twice in one call");
        }
    }
}

// ---------------------------------------------------------------------------
// Per-worker state: a lookup table built before the closure.

static TABLES: AtomicU64 = AtomicU64::new(0);

#[remote]
fn lookup(pairs: Vec<(String, u32)>) -> impl Fn(String) -> (u32, u64, Option<u32>) {
    let table: HashMap<String, u32> = pairs.into_iter().collect();
    let built = TABLES.fetch_add(1, Ordering::SeqCst) + 1;
    move |key| (std::process::id(), built, table.get(&key).copied())
}

#[test]
fn a_lookup_table_built_before_the_closure_serves_every_item() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(4)
        .build()
        .unwrap();
    let pairs: Vec<(String, u32)> = (0..50).map(|i| (format!("k{i}"), i * i)).collect();
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    let out = pool.map(lookup(pairs), keys).unwrap();
    let values: Vec<Option<u32>> = out.iter().map(|&(_, _, v)| v).collect();
    let expected: Vec<Option<u32>> = (0..60).map(|i| (i < 50).then(|| i * i)).collect();
    assert_eq!(values, expected);
    // One table per worker for the whole call, whatever the number of items.
    let mut built: HashMap<u32, u64> = HashMap::new();
    for &(pid, n, _) in &out {
        assert_eq!(*built.entry(pid).or_insert(n), n);
    }
    assert!(!built.is_empty() && built.len() <= 2);
}

// ---------------------------------------------------------------------------
// Closures of every arity, with results of several types.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point3 {
    x: i32,
    y: i32,
    z: i32,
}

#[remote]
fn answer(n: u64) -> impl Fn() -> u64 {
    move || n * 2
}

#[remote]
fn greet(greeting: String) -> impl Fn(String) -> String {
    move |name| format!("{greeting}, {name}!")
}

#[remote]
fn repeat(filler: u8) -> impl Fn(usize, u8) -> Vec<u8> {
    move |n, last| {
        let mut v = vec![filler; n];
        v.push(last);
        v
    }
}

#[remote]
fn offset(by: i32) -> impl Fn(i32, i32, i32) -> Point3 {
    move |x, y, z| Point3 {
        x: x + by,
        y: y + by,
        z: z + by,
    }
}

#[remote]
fn find(haystack: Vec<u32>) -> impl Fn(u32, u32, u32, u32) -> Option<usize> {
    move |a, b, c, d| {
        haystack
            .iter()
            .position(|&x| x == a || x == b || x == c || x == d)
    }
}

#[remote]
fn checked_div(numerator: i64) -> impl Fn(i64) -> Result<i64, String> {
    move |d| {
        if d == 0 {
            Err(format!("{numerator} / 0"))
        } else {
            Ok(numerator / d)
        }
    }
}

#[remote]
fn nothing(_unused: u8) -> impl Fn(u64) {
    |_| {}
}

#[test]
fn closures_of_every_arity_and_result_type() {
    let pool = ProcessPool::new(2).unwrap();

    assert_eq!(pool.apply(answer(21), ()).unwrap(), 42);

    let names = ["Ada".to_owned(), "Bob".to_owned()];
    assert_eq!(
        pool.map(greet("Hi".to_owned()), names).unwrap(),
        ["Hi, Ada!", "Hi, Bob!"]
    );

    assert_eq!(
        pool.starmap(repeat(7), [(0, 1), (2, 3)]).unwrap(),
        [vec![1], vec![7, 7, 3]]
    );
    assert_eq!(pool.apply(repeat(0), (1, 9)).unwrap(), [0, 9]);

    assert_eq!(
        pool.starmap(offset(10), [(1, 2, 3), (-10, 0, 10)]).unwrap(),
        [
            Point3 {
                x: 11,
                y: 12,
                z: 13
            },
            Point3 { x: 0, y: 10, z: 20 },
        ]
    );

    let haystack = vec![5, 6, 7, 8];
    assert_eq!(
        pool.starmap(find(haystack.clone()), [(1, 2, 3, 7), (1, 2, 3, 4)])
            .unwrap(),
        [Some(2), None]
    );
    assert_eq!(pool.apply(find(haystack), (9, 9, 9, 5)).unwrap(), Some(0));

    let out = pool.map(checked_div(100), [5, 0, -3]).unwrap();
    assert_eq!(out, [Ok(20), Err("100 / 0".to_owned()), Ok(-33)]);
    assert_eq!(
        pool.apply(checked_div(1), (0,)).unwrap(),
        Err("1 / 0".to_owned())
    );

    assert_eq!(pool.map(nothing(0), 0..3).unwrap(), [(); 3]);
}

// ---------------------------------------------------------------------------
// `impl FnMut`: each worker keeps its closure's state across its items.

#[remote]
fn counter(start: u64) -> impl FnMut(u64) -> (u32, u64) {
    let mut count = start;
    move |_| {
        count += 1;
        (std::process::id(), count)
    }
}

#[test]
fn an_fn_mut_closure_keeps_its_state_across_a_workers_items() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(3)
        .build()
        .unwrap();
    let counts = |out: Vec<(u32, u64)>| out.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    let out = pool.map(counter(0), 0..10).unwrap();
    assert_eq!(counts(out), (1..=10).collect::<Vec<_>>());
    // A new call builds a new closure: its state starts over.
    let out = pool.map(counter(100), 0..4).unwrap();
    assert_eq!(counts(out), [101, 102, 103, 104]);

    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(3)
        .build()
        .unwrap();
    let out = pool.map(counter(0), 0..200).unwrap();
    let mut last: HashMap<u32, u64> = HashMap::new();
    for (pid, n) in out {
        if let Some(&previous) = last.get(&pid) {
            assert!(n > previous, "worker {pid}: {n} after {previous}");
        } else {
            assert_eq!(n, 1, "worker {pid} did not start counting at 1");
        }
        last.insert(pid, n);
    }
    // Together, the workers counted every item once.
    assert_eq!(last.values().sum::<u64>(), 200);
}

// ---------------------------------------------------------------------------
// Visibility, doc comments and other attributes.

// `pub` on purpose, in a private module: #[remote] keeps visibilities.
#[allow(unreachable_pub)]
mod visibility {
    use forkmap::remote;

    /// Public, documented, inlined, and must be used.
    #[remote]
    #[inline]
    #[must_use = "a factory does nothing until its value is given to a pool"]
    pub fn public(n: u32) -> impl Fn(u32) -> u32 {
        move |x| x + n
    }

    /// Crate-visible, under a `cfg` that holds (forkmap runs on Unix only).
    #[remote]
    #[cfg(unix)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn crate_visible(
        a: u8,
        b: u8,
        c: u8,
        d: u8,
        e: u8,
        f: u8,
        g: u8,
        h: u8,
    ) -> impl Fn(u8) -> u32 {
        move |x| {
            [a, b, c, d, e, f, g, h, x]
                .iter()
                .map(|&v| u32::from(v))
                .sum()
        }
    }

    /// Compiled out: the `Hidden` struct below would otherwise be defined
    /// twice.
    #[remote]
    #[cfg(any())]
    pub fn hidden(n: u32) -> impl Fn(u32) -> u32 {
        move |x| x * n
    }

    /// Not `hidden`'s struct.
    pub(crate) struct Hidden;

    #[remote]
    #[deny(unused_variables)]
    fn private(n: u32) -> impl Fn(u32) -> u32 {
        move |x| x * n
    }

    /// Private factories are usable inside their module.
    pub(crate) fn run_private(pool: &forkmap::ProcessPool, n: u32, items: [u32; 2]) -> Vec<u32> {
        let factory: Private = private(n);
        pool.map(factory, items).unwrap()
    }
}

#[test]
fn public_crate_and_private_factories_with_attributes() {
    let pool = ProcessPool::new(2).unwrap();
    let public: visibility::Public = visibility::public(5);
    assert_eq!(pool.map(public, [1, 2]).unwrap(), [6, 7]);
    let many: visibility::CrateVisible = visibility::crate_visible(1, 2, 3, 4, 5, 6, 7, 8);
    assert_eq!(pool.map(many, [100]).unwrap(), [136]);
    assert_eq!(visibility::run_private(&pool, 3, [4, 5]), [12, 15]);
    let _: visibility::Hidden = visibility::Hidden;
}

// ---------------------------------------------------------------------------
// Same-named factories in two modules.

#[allow(unreachable_pub)]
mod a {
    use forkmap::remote;

    #[remote]
    pub fn scale(k: i64) -> impl Fn(i64) -> i64 {
        move |x| x * k
    }
}

#[allow(unreachable_pub)]
mod b {
    use forkmap::remote;

    #[remote]
    pub fn scale(k: i64) -> impl Fn(i64) -> i64 {
        move |x| x + k
    }
}

#[test]
fn same_named_factories_in_two_modules_do_not_clash() {
    let pool = ProcessPool::new(2).unwrap();
    for _ in 0..2 {
        assert_eq!(pool.map(a::scale(10), [1, 2, 3]).unwrap(), [10, 20, 30]);
        assert_eq!(pool.map(b::scale(10), [1, 2, 3]).unwrap(), [11, 12, 13]);
    }
    let (x, y): (a::Scale, b::Scale) = (a::scale(3), b::scale(3));
    assert_eq!(pool.apply(y, (4,)).unwrap(), 7);
    assert_eq!(pool.apply(x, (4,)).unwrap(), 12);
}

/// Two factories named `local`, each inside its own function of this module:
/// one module path, one name, told apart by where `#[remote]` stands.
fn times_local(pool: &ProcessPool) -> Vec<i64> {
    #[remote]
    fn local(k: i64) -> impl Fn(i64) -> i64 {
        move |x| x * k
    }
    pool.map(local(10), [1, 2]).unwrap()
}

fn plus_local(pool: &ProcessPool) -> Vec<i64> {
    #[remote]
    fn local(k: i64) -> impl Fn(i64) -> i64 {
        move |x| x + k
    }
    pool.map(local(10), [1, 2]).unwrap()
}

#[test]
fn same_named_factories_in_two_functions_of_one_module_do_not_clash() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(times_local(&pool), [10, 20]);
    assert_eq!(plus_local(&pool), [11, 12]);
}

// ---------------------------------------------------------------------------
// Local use: `call`, `into_closure`, `Clone` and `Debug`.

#[test]
fn call_runs_locally_what_the_pool_runs() {
    let pool = ProcessPool::new(2).unwrap();

    let zero = answer(5);
    assert_eq!(zero.call(), pool.apply(zero.clone(), ()).unwrap());
    assert_eq!(zero.call(), 10);

    let one = greet("Hey".to_owned());
    let local: Vec<String> = ["a", "b"].map(|s| one.call(s.to_owned())).to_vec();
    assert_eq!(
        local,
        pool.map(one.clone(), ["a".to_owned(), "b".to_owned()])
            .unwrap()
    );
    assert_eq!(local, ["Hey, a!", "Hey, b!"]);

    let two = repeat(4);
    assert_eq!(two.call(2, 5), pool.apply(two.clone(), (2, 5)).unwrap());
    assert_eq!(two.call(2, 5), [4, 4, 5]);

    // Each `call` starts afresh: an `FnMut`'s state does not carry over.
    let count = counter(0);
    assert_eq!(count.call(0).1, 1);
    assert_eq!(count.call(0).1, 1);

    let doubled: Vec<u64> = [1, 2, 3].map(answer).iter().map(|f| f.call()).collect();
    assert_eq!(doubled, [2, 4, 6]);

    // `into_closure` gives a plain closure.
    let squares: Vec<u64> = (0..5).map(power(2).into_closure()).collect();
    assert_eq!(squares, [0, 1, 4, 9, 16]);
    let pad = repeat(1).into_closure();
    assert_eq!(
        pad(2, 0),
        [1, 1, 0],
        "a closure of two arguments, run locally"
    );
    let mut counting = counter(10).into_closure();
    assert_eq!([counting(0).1, counting(0).1], [11, 12]);
}

#[remote]
fn power(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

#[test]
fn the_struct_is_clone_and_debug_when_its_arguments_are() {
    let p = power(2);
    assert_eq!(format!("{p:?}"), "Power { y: 2 }");
    assert_eq!(format!("{:?}", answer(1)), "Answer { n: 1 }");
    assert_eq!(
        format!("{:?}", greet("hi".into())),
        r#"Greet { greeting: "hi" }"#
    );
    assert_eq!(format!("{:?}", Custom { n: 3 }), "Custom { n: 3 }");
    assert_eq!(
        format!("{:#?}", power(3)),
        format!("{:#?}", Expected { y: 3 }).replace("Expected", "Power")
    );

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Expected {
        y: u32,
    }

    let pool = ProcessPool::new(1).unwrap();
    let copy = p.clone();
    assert_eq!(pool.map(p, [3]).unwrap(), [9]);
    assert_eq!(pool.map(copy, [4]).unwrap(), [16]);
}

/// Not `Clone`, not `Debug`: the factory still compiles and runs in a pool,
/// and only lacks `call`, `clone` and `{:?}`.
#[derive(Serialize, Deserialize)]
struct Secret(u64);

#[remote]
fn opaque(o: Secret) -> impl Fn(u64) -> u64 {
    move |x| x + o.0
}

#[test]
fn a_factory_with_an_argument_that_is_not_clone_still_runs() {
    let pool = ProcessPool::new(1).unwrap();
    assert_eq!(pool.map(opaque(Secret(5)), [1]).unwrap(), [6]);
    assert_eq!(opaque(Secret(1)).into_closure()(1), 2);
}

// ---------------------------------------------------------------------------
// Options: `crate = ...` and `name = ...`.

/// A re-export of forkmap, as a crate that wraps it would have.
pub mod reexport {
    pub use forkmap;
}

#[remote(crate = reexport::forkmap)]
fn through_reexport(n: u64) -> impl Fn(u64) -> u64 {
    move |x| x * 100 + n
}

#[remote(name = Custom)]
fn custom_named(n: u64) -> impl Fn(u64) -> u64 {
    move |x| x - n
}

#[test]
fn the_crate_and_name_options() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(through_reexport(7), [1, 2]).unwrap(), [107, 207]);
    let custom: Custom = custom_named(1);
    assert_eq!(pool.map(custom, [5, 6]).unwrap(), [4, 5]);
    assert_eq!(Custom { n: 2 }.call(5), 3);
}

// ---------------------------------------------------------------------------
// What to write instead of a generic factory (which is a compile error, see
// tests/ui/generic-factory.rs): one factory per type, or an argument of a
// concrete serde type.

#[remote]
fn scale_u64(factor: u64) -> impl Fn(u64) -> u64 {
    move |x| x * factor
}

#[remote]
fn scale_f64(factor: f64) -> impl Fn(f64) -> f64 {
    move |x| x * factor
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Number {
    Int(u64),
    Float(f64),
}

#[remote]
fn scale_number(factor: u64) -> impl Fn(Number) -> Number {
    move |x| match x {
        Number::Int(n) => Number::Int(n * factor),
        Number::Float(x) => Number::Float(x * factor as f64),
    }
}

#[test]
fn instead_of_a_generic_factory() {
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(scale_u64(3), [1, 2]).unwrap(), [3, 6]);
    assert_eq!(pool.map(scale_f64(0.5), [1.0, 3.0]).unwrap(), [0.5, 1.5]);
    assert_eq!(
        pool.map(scale_number(2), [Number::Int(4), Number::Float(0.25)])
            .unwrap(),
        [Number::Int(8), Number::Float(0.5)]
    );
}

/// Makes a factory `local` that adds `$k` to `x * n`, and returns its value
/// for `n`: each use of the macro makes one, of the same name.
macro_rules! scaled {
    ($k:expr, $n:expr) => {{
        #[remote]
        fn local(n: i64) -> impl Fn(i64) -> i64 {
            move |x| x * n + $k
        }
        local($n)
    }};
}

/// Two uses inside one macro: both factories stand at the place of the
/// outer macro's use, with the same name.
macro_rules! two_scaled {
    () => {
        (scaled!(1, 10), scaled!(1000, 10))
    };
}

#[test]
fn factories_that_one_macro_makes_in_one_place_run_their_own_code() {
    let (small, large) = two_scaled!();
    assert_eq!((small.call(1), large.call(1)), (11, 1010));
    let pool = ProcessPool::new(2).unwrap();
    assert_eq!(pool.map(small, [1, 2]).unwrap(), [11, 21]);
    assert_eq!(pool.map(large, [1, 2]).unwrap(), [1010, 1020]);
}
