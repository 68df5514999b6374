use forkmap::remote;

#[remote]
extern "C" fn power_factory(y: u32) -> impl Fn(u64) -> u64 {
    move |x| x.pow(y)
}

fn main() {}
