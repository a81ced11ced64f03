//! Compile-time behaviour of the macros: what compiles (`ui/pass`, also run) and the error each
//! mistake produces (`ui/fail`, one mistake per file, with its `.stderr`).
//!
//! After an intended change of a message: `TRYBUILD=overwrite cargo test -p cache-macros --test ui`,
//! then review the diff of the `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
