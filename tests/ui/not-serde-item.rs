struct Point {
    x: f64,
    y: f64,
}

fn main() {
    let points = vec![Point { x: 3.0, y: 4.0 }];
    let pool = forkmap::ProcessPool::new(1).unwrap();
    let _ = pool.map(|p: Point| (p.x * p.x + p.y * p.y).sqrt(), points);
}
