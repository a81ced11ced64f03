//! What can be invalidated: [`Invalidation`], the public vocabulary of invalidation.
//!
//! Every invalidation goes through [`Cache::invalidate_with`](crate::Cache::invalidate_with) with an
//! [`Invalidation`], so that a later broadcast to other instances has one place to hook in. How
//! invalidation wins races with loads (the log, the gate and the marks) is the engine's
//! (`engine/invalidate.rs`). Owns this type and what it affects; never touches a tier.

use std::sync::Arc;

use crate::key::glob::glob_match;

/// Something to invalidate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invalidation {
    /// One key (rendered, without the namespace).
    Key(String),
    /// Every entry carrying the tag.
    Tag(String),
    /// Every key matching a Redis glob (`prod:*`), found by SCAN: for operators, not hot paths.
    Pattern(String),
    /// The whole namespace.
    All,
}

impl Invalidation {
    /// Whether this invalidates the entry of `key` carrying `tags`.
    pub(crate) fn affects(&self, key: &str, tags: &[Arc<str>]) -> bool {
        match self {
            Invalidation::Key(k) => k == key,
            Invalidation::Tag(t) => tags.iter().any(|x| **x == **t),
            Invalidation::Pattern(glob) => glob_match(glob.as_bytes(), key.as_bytes()),
            Invalidation::All => true,
        }
    }
}
