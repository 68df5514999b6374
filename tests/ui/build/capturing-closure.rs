fn main() {
    let y = 2u32;
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.map(move |x: u64| x.pow(y), 0..3u64);
}
