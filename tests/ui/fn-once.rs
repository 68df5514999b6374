use forkmap::remote;

#[remote]
fn greeting_factory(name: String) -> impl FnOnce() -> String {
    move || name
}

fn main() {}
