fn main() {
    let lines: Vec<String> = vec!["a".into(), "bb".into()];
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.map(|s: &String| s.len(), lines.iter());
}
