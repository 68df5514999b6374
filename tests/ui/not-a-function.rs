use forkmap::remote;

#[remote]
struct PowerFactory {
    y: u32,
}

fn main() {}
