use forkmap::remote;

// Reported once, at the argument.
#[remote]
#[deny(non_snake_case)]
fn grid(N: u64) -> impl Fn(u64) -> u64 {
    move |x| x * N
}

fn main() {
    let _ = grid(3);
}
