use forkmap::remote;

#[remote]
fn tagged(#[cfg(unix)] tag: String, #[serde(with = "serde_bytes")] data: Vec<u8>) -> impl Fn(u64) -> usize {
    move |x| tag.len() + data.len() + x as usize
}

fn main() {
    let _ = tagged(String::new(), vec![1, 2, 3]);
}
