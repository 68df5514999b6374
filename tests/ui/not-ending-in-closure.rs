use forkmap::remote;

fn power(x: u64) -> u64 {
    x * x
}

#[remote]
fn power_factory() -> impl Fn(u64) -> u64 {
    power
}

fn main() {}
