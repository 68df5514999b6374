use forkmap::remote;
use std::ops::Mul;

#[remote]
fn scale_factory<T: Mul<Output = T> + Copy>(factor: T) -> impl Fn(T) -> T {
    move |x| x * factor
}

fn main() {}
