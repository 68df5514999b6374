use forkmap::remote;

struct Point {
    x: f64,
    y: f64,
}

#[remote]
fn point_factory(y: f64) -> impl Fn(f64) -> Point {
    move |x| Point { x, y }
}

fn main() {}
