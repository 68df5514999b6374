use forkmap::remote;

#[remote]
fn label_factory(label: &str) -> impl Fn(u64) -> String {
    let label = label.to_owned();
    move |x| format!("{label}{x}")
}

fn main() {}
