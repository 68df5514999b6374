use forkmap::remote;

#[remote]
fn sum_of_nine(k: u64) -> impl Fn(u64, u64, u64, u64, u64, u64, u64, u64, u64) -> u64 {
    move |a, b, c, d, e, f, g, h, i| a + b + c + d + e + f + g + h + i + k
}

fn main() {
    let _ = sum_of_nine(1);
}
