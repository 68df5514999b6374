use forkmap::remote;

#[remote]
fn prefix_factory(prefix: String) -> impl Fn(&str) -> String {
    move |s| format!("{prefix}{s}")
}

fn main() {}
