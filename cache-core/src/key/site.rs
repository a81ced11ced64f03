//! Macro call sites bound to a cache: a site's templates bound to its argument slots, with its
//! pattern in that cache ([`SiteBinding`]), and the registry of the bindings of one cache
//! ([`SiteRegistry`], by [`SiteId`]).
//!
//! Owns bindings and their lookup. Parsing a site's attribute and registering its pattern are
//! `__private`'s and the engine's; this file never touches a tier.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::pattern::{BoundTemplate, Pattern};
use super::{Key, Tags};
use crate::error::KeyError;

/// A call site's templates bound to its argument slots, and its pattern in one cache.
#[derive(Debug)]
pub(crate) struct SiteBinding {
    /// `None` for an evict site, which renders keys without caching under them.
    pattern: Option<Pattern>,
    key: Option<BoundTemplate>,
    /// The pattern's registered tags, rebound to the site's slots, then the site's own.
    tags: Vec<BoundTemplate>,
    /// The rendered tags when every tag template is literal, shared by every key.
    static_tags: Option<Tags>,
    glob: Option<BoundTemplate>,
}

impl SiteBinding {
    /// A binding of a site whose key renders keys of `pattern`: keys written through it carry the
    /// pattern's registered tags, then the site's own `tags`.
    pub(crate) fn new(
        pattern: Option<Pattern>,
        key: Option<BoundTemplate>,
        mut tags: Vec<BoundTemplate>,
        glob: Option<BoundTemplate>,
    ) -> Result<SiteBinding, KeyError> {
        let registered = match (&pattern, &key) {
            (Some(p), Some(k)) if p.has_tags() => Some((p, k)),
            _ => None,
        };
        let static_tags = match registered {
            // No tags of its own: the pattern's shared literal tags, when it has them.
            Some((p, k)) if tags.is_empty() => {
                tags = p.tags_for_site(k)?;
                p.static_tags().cloned()
            }
            Some((p, k)) => {
                let mut all = p.tags_for_site(k)?;
                all.append(&mut tags);
                tags = all;
                literal_tags(&tags)
            }
            None => literal_tags(&tags),
        };
        Ok(SiteBinding {
            pattern,
            key,
            tags,
            static_tags,
            glob,
        })
    }

    #[inline]
    pub(crate) fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    #[inline]
    pub(crate) fn key(&self) -> Option<&BoundTemplate> {
        self.key.as_ref()
    }

    #[inline]
    pub(crate) fn tags(&self) -> &[BoundTemplate] {
        &self.tags
    }

    /// The literal tags shared by every key of the site, if every tag template is literal.
    #[inline]
    pub(crate) fn static_tags(&self) -> Option<&Tags> {
        self.static_tags.as_ref()
    }

    pub(crate) fn glob(&self) -> Option<&BoundTemplate> {
        self.glob.as_ref()
    }

    /// The owned key of a text rendered through this site (`tags`: rendered; `None`: the
    /// literal ones). `None` for a site without a pattern.
    pub(crate) fn key_of(&self, text: &str, tags: Option<Tags>) -> Option<Key> {
        let pattern = self.pattern.as_ref()?;
        let tags = match tags {
            Some(tags) => tags,
            None => self.static_tags.clone()?,
        };
        Some(pattern.key_from_parts(text, tags))
    }
}

/// The rendered tags, deduplicated, when every tag template is literal.
fn literal_tags(tags: &[BoundTemplate]) -> Option<Tags> {
    if !tags.iter().all(|t| t.template().is_literal()) {
        return None;
    }
    let mut literal: Vec<Arc<str>> = Vec::with_capacity(tags.len());
    for t in tags {
        let source = t.template().source();
        if !literal.iter().any(|l| &**l == source) {
            literal.push(Arc::from(source));
        }
    }
    Some(literal.into())
}

/// Identifies a call site: the address of its `static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SiteId(usize);

impl SiteId {
    /// The id of the site stored in `site`.
    pub(crate) fn of<T>(site: &'static T) -> SiteId {
        SiteId(std::ptr::from_ref(site) as usize)
    }
}

/// The bindings of call sites to one cache. (A site keeps its binding to the first cache it meets
/// in itself, read with no lock; this registry holds its bindings to any other.)
#[derive(Debug, Default)]
pub(crate) struct SiteRegistry {
    bindings: RwLock<HashMap<SiteId, Arc<SiteBinding>>>,
}

impl SiteRegistry {
    pub(crate) fn get(&self, site: SiteId) -> Option<Arc<SiteBinding>> {
        self.bindings.read().get(&site).cloned()
    }

    /// Keeps `binding` for `site`, or the binding another thread kept first; returns the kept one.
    pub(crate) fn insert(&self, site: SiteId, binding: Arc<SiteBinding>) -> Arc<SiteBinding> {
        Arc::clone(self.bindings.write().entry(site).or_insert(binding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SITE: u8 = 0;

    #[test]
    fn a_site_keeps_the_binding_kept_first() {
        let registry = SiteRegistry::default();
        let id = SiteId::of(&SITE);
        assert!(registry.get(id).is_none());
        let binding = || Arc::new(SiteBinding::new(None, None, Vec::new(), None).unwrap());
        let first = registry.insert(id, binding());
        let second = registry.insert(id, binding());
        assert!(Arc::ptr_eq(&first, &second));
        assert!(registry.get(id).is_some_and(|b| Arc::ptr_eq(&b, &first)));
        assert_eq!(
            first.static_tags().map(|t| t.len()),
            Some(0),
            "no tags: all literal"
        );
    }
}
