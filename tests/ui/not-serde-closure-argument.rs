use forkmap::remote;

struct Point {
    x: f64,
    y: f64,
}

#[remote]
fn norm_factory(scale: f64) -> impl Fn(Point) -> f64 {
    move |p| scale * (p.x * p.x + p.y * p.y).sqrt()
}

fn main() {
    // One mistake, one message: this use adds no error of its own.
    let pool = forkmap::SerialPool::new();
    let _ = pool.map(norm_factory(2.0), [Point { x: 3.0, y: 4.0 }]);
}
