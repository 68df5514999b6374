//! Compile-time behaviour of `#[remote]` and of pools given what cannot travel:
//! one file per mistake, named after it, with the expected compiler output in
//! the `.stderr` beside it.
//!
//! `tests/ui/*.rs` are checked with `cargo check`, as an editor checks code:
//! each of these mistakes is an error before any code is generated.
//! `tests/ui/build/*.rs` are the mistakes that only `cargo build` reports (a
//! closure that captures only `Copy` values, refused by a constant that the
//! compiler evaluates when it generates code), and `tests/ui/pass/*.rs` must
//! build; having a pass case makes trybuild run `cargo build`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

#[test]
fn ui_build() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/build/*.rs");
}
