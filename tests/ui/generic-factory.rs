use forkmap::remote;
use std::ops::Mul;

#[remote]
fn scale_factory<T: Mul<Output = T> + Copy>(factor: T) -> impl Fn(T) -> T {
    move |x| x * factor
}

fn main() {
    // One mistake, one message: this use adds no error of its own.
    let pool = forkmap::SerialPool::new();
    let _ = pool.map(scale_factory(2u64), 0..3u64);
}
