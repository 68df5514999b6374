//! `#[remote]` names everything it uses by its full path: it works in a
//! module without the prelude.
#![no_implicit_prelude]

#[::forkmap::remote]
fn add_k(k: i64) -> impl ::core::ops::Fn(i64) -> i64 {
    move |x| x + k
}

fn main() {
    ::std::assert_eq!(add_k(2).call(1), 3);
}
