//! The registry of key patterns of one [`Cache`](crate::Cache).
//!
//! Patterns are identified by their *shape*, the template with placeholder names erased:
//! `prod:<id>` and `prod:<product.id>` render the same keys, so they are the same pattern, with
//! one TTL policy and one set of statistics.
//!
//! Owns the patterns of one cache and their registration rules (same configuration: the same
//! pattern; another one: a conflict). Never touches a tier; counts only L1 evictions, which the
//! L1 reports by pattern id.

use std::collections::HashMap;

use parking_lot::RwLock;

use super::pattern::Pattern;
use super::template::{Template, TemplateKind};
use crate::error::{ConfigError, ConfigErrorKind, Error, KeyError};
use crate::metrics::bump;
use crate::ttl::TtlPolicy;

/// What to register: a key template, its TTL policy and its tag templates.
///
/// ```
/// use cache_core::{PatternConfig, TtlPolicy};
/// use std::time::Duration;
/// let config = PatternConfig::new("cat:<id>:children", TtlPolicy::new(Duration::from_secs(1800)))
///     .tag("categories")
///     .tag("cat:<id>");
/// assert_eq!(config.template(), "cat:<id>:children");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct PatternConfig {
    template: String,
    policy: TtlPolicy,
    tags: Vec<String>,
}

impl PatternConfig {
    /// A pattern with a policy and no tags.
    pub fn new(template: impl Into<String>, policy: TtlPolicy) -> Self {
        PatternConfig {
            template: template.into(),
            policy,
            tags: Vec::new(),
        }
    }

    /// Adds a tag template; its placeholders must be placeholders of the key template.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The key template.
    pub fn template(&self) -> &str {
        &self.template
    }
}

struct Registered {
    policy: TtlPolicy,
    tags: Vec<String>,
    pattern: Pattern,
}

/// Patterns by shape, and by id (the order of registration): L1 entries name their pattern by
/// id, so that reading one touches no shared reference count.
#[derive(Default)]
pub(crate) struct Registry {
    patterns: RwLock<Patterns>,
}

#[derive(Default)]
struct Patterns {
    /// Shape → id.
    by_shape: HashMap<String, u32>,
    /// Indexed by id.
    by_id: Vec<Registered>,
}

impl Patterns {
    fn get(&self, shape: &str) -> Option<&Registered> {
        let &id = self.by_shape.get(shape)?;
        self.by_id.get(id as usize)
    }

    /// Registers a new pattern under `shape`, or returns the one already there.
    fn insert(
        &mut self,
        shape: String,
        policy: TtlPolicy,
        tags: Vec<String>,
        build: impl FnOnce(u32) -> Result<Pattern, KeyError>,
    ) -> Result<&Registered, Error> {
        use std::collections::hash_map::Entry;
        let id = match self.by_shape.entry(shape) {
            Entry::Occupied(slot) => *slot.get(),
            Entry::Vacant(slot) => {
                let id = u32::try_from(self.by_id.len()).map_err(|_| {
                    ConfigError::new(
                        ConfigErrorKind::Limit,
                        "more than 2^32 key patterns in one cache",
                    )
                })?;
                self.by_id.push(Registered {
                    policy,
                    tags,
                    pattern: build(id)?,
                });
                *slot.insert(id)
            }
        };
        Ok(&self.by_id[id as usize])
    }
}

fn parse(template: &str, kind: TemplateKind) -> Result<Template, Error> {
    Template::parse(template, kind).map_err(|source| {
        Error::Key(KeyError::Template {
            template: template.to_owned(),
            source,
        })
    })
}

impl Registry {
    /// Registers a pattern, or returns the one registered with the same shape and configuration.
    pub(crate) fn register(
        &self,
        config: PatternConfig,
        max_lifetime: std::time::Duration,
    ) -> Result<Pattern, Error> {
        let key = parse(&config.template, TemplateKind::Key)?;
        let shape = key.shape();
        let conflict = || Error::PatternConflict {
            template: config.template.clone(),
        };
        if let Some(r) = self.patterns.read().get(&shape) {
            return if r.policy == config.policy && r.tags == config.tags {
                Ok(r.pattern.clone())
            } else {
                Err(conflict())
            };
        }
        let tags = config
            .tags
            .iter()
            .map(|t| parse(t, TemplateKind::Tag))
            .collect::<Result<Vec<_>, _>>()?;
        config.policy.validate(max_lifetime)?;
        let mut patterns = self.patterns.write();
        let r = patterns.insert(shape, config.policy.clone(), config.tags.clone(), |id| {
            Pattern::new(id, key, tags, config.policy.clone())
        })?;
        if r.policy == config.policy && r.tags == config.tags {
            Ok(r.pattern.clone())
        } else {
            Err(conflict())
        }
    }

    /// The pattern a macro call site uses: the registered one with this shape, or a new one with
    /// `policy` (or `default` when the site gives none). A site whose policy differs from the
    /// registered one uses the registered one, with a warning: the first registration wins.
    pub(crate) fn register_site(
        &self,
        key: &Template,
        policy: Option<TtlPolicy>,
        default: &TtlPolicy,
        max_lifetime: std::time::Duration,
    ) -> Result<Pattern, Error> {
        let shape = key.shape();
        if let Some(r) = self.patterns.read().get(&shape) {
            if policy.as_ref().is_some_and(|p| *p != r.policy) {
                tracing::warn!(
                    template = key.source(),
                    registered = r.pattern.template(),
                    "call site's TTL policy differs from the registered pattern's; using the registered one"
                );
            }
            return Ok(r.pattern.clone());
        }
        let policy = match policy {
            Some(p) => p,
            None => {
                tracing::warn!(template = key.source(), ttl = ?default.ttl(), "pattern used without a TTL and not registered: using the default TTL");
                default.clone()
            }
        };
        policy.validate(max_lifetime)?;
        let mut patterns = self.patterns.write();
        let r = patterns.insert(shape, policy.clone(), Vec::new(), |id| {
            Pattern::new(id, key.clone(), Vec::new(), policy)
        })?;
        Ok(r.pattern.clone())
    }

    /// Counts an L1 eviction of an entry of pattern `id`.
    pub(crate) fn count_eviction(&self, id: u32) {
        if let Some(r) = self.patterns.read().by_id.get(id as usize) {
            bump(&r.pattern.stats().evictions);
        }
    }

    pub(crate) fn get(&self, template: &str) -> Option<Pattern> {
        let shape = Template::parse(template, TemplateKind::Key).ok()?.shape();
        self.patterns.read().get(&shape).map(|r| r.pattern.clone())
    }

    pub(crate) fn all(&self) -> Vec<Pattern> {
        let mut all: Vec<Pattern> = self
            .patterns
            .read()
            .by_id
            .iter()
            .map(|r| r.pattern.clone())
            .collect();
        all.sort_by(|a, b| a.template().cmp(b.template()));
        all
    }
}
