use forkmap::remote;

struct Point {
    x: f64,
    y: f64,
}

#[remote]
fn norm_factory(scale: f64) -> impl Fn(Point) -> f64 {
    move |p| scale * (p.x * p.x + p.y * p.y).sqrt()
}

fn main() {}
