use forkmap::remote;

#[remote]
fn label_factory(label: impl ToString) -> impl Fn(u64) -> String {
    let label = label.to_string();
    move |x| format!("{label}{x}")
}

fn main() {}
