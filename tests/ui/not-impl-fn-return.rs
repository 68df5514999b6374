use forkmap::remote;

#[remote]
fn power_factory(y: u32) -> Box<dyn Fn(u64) -> u64> {
    Box::new(move |x: u64| x.pow(y))
}

fn main() {}
