use forkmap::remote;

#[remote]
fn power_factory(y: u32) -> impl Send + 'static {
    move |x: u64| x.pow(y)
}

fn main() {}
