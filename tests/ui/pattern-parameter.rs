use forkmap::remote;

#[remote]
fn affine_factory((a, b): (u64, u64)) -> impl Fn(u64) -> u64 {
    move |x| a * x + b
}

fn main() {}
