use forkmap::remote;

// A factory is a free function: its body has no `self`, though the
// struct it makes does.
#[remote]
fn doubled(k: u64) -> impl Fn(u64) -> u64 {
    let twice = self.k * 2;
    move |x| x + twice
}

fn main() {
    let _ = doubled(1);
}
