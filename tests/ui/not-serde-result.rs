struct Point {
    x: f64,
    y: f64,
}

fn main() {
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.map(|x: f64| Point { x, y: 2.0 * x }, [1.0, 2.0]);
}
