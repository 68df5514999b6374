use forkmap::remote;
use serde::{Deserialize, Serialize};

/// Travels, but is not `Clone`.
#[derive(Serialize, Deserialize)]
struct Table(Vec<u64>);

#[remote]
fn lookup_factory(table: Table) -> impl Fn(usize) -> u64 {
    move |i| table.0[i]
}

fn main() {
    // The factory compiles and its value runs in a pool, but `call` needs
    // every argument to be `Clone`: use `into_closure` instead.
    let factory = lookup_factory(Table(vec![1, 2, 3]));
    let _ = factory.call(1);
}
