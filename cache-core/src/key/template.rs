//! Key templates (`prod:<id>`, `search:<query:hash>`): parsed by the `cache-template` crate, which
//! `cache-macros` uses too, so that a template is judged by the same code at compile time and at
//! run time. Nothing of its own may be added here.

pub use cache_template::*;
