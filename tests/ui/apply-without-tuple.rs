fn main() {
    // `apply` takes the call's arguments as a tuple: `(3,)`, not `3`.
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.apply(|x: u64| x * 2, 3u64);
}
