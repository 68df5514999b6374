use forkmap::remote;
use std::fs::File;

#[remote]
fn log_factory(prefix: String, file: File) -> impl Fn(u64) -> u64 {
    let _ = (prefix, file);
    move |x| x
}

fn main() {}
