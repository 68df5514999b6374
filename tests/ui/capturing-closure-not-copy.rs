fn main() {
    let prefix = String::from("item ");
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.map(move |x: u64| format!("{prefix}{x}"), 0..3u64);
}
