use forkmap::remote;

#[remote]
fn power_factory(y: u32) {
    let _ = move |x: u64| x.pow(y);
}

fn main() {}
