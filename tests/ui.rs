//! Compile-time behaviour of `#[remote]` and of pools given what cannot travel:
//! one file per error message under `tests/ui/`, with the expected compiler
//! output in the `.stderr` beside it. `tests/ui/pass/` must compile; having a
//! pass case also makes trybuild run `cargo build` rather than `cargo check`,
//! which the capturing-closure case needs (its error is a post-monomorphization
//! constant assertion).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
