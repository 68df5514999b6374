use forkmap::remote;

#[remote]
fn power_factory(y: u32) -> impl Fn(u64) -> u64
where
    u32: Copy,
{
    move |x| x.pow(y)
}

fn main() {}
