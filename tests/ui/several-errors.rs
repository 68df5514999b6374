use forkmap::remote;

#[remote(crate = forkmap, crate = forkmap)]
async fn power_factory<T>(y: u32, (a, b): (u8, u8)) -> impl FnOnce(u64) -> u64 {
    move |x| x.pow(y) + u64::from(a + b)
}

fn main() {}
