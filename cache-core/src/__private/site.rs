//! The static description of a macro call site, one type per attribute: [`CachedSpec`]
//! (`#[cached]`), [`PutSpec`] (`#[cache_put]`) and [`EvictSpec`] (`#[cache_evict]`), gathered in
//! [`SiteSpec`], and how a spec binds to a cache (its templates parsed and bound to the argument
//! slots, its pattern registered with the policy written in the attribute).
//!
//! Owns the specs and their binding. Each spec holds exactly what its attribute takes: an evict
//! site has no TTL, a put site no lease. The macros build these in a `static`; the hit path
//! (`__private.rs`) reads them. Never touches a tier.

use std::time::Duration;

use crate::engine::Engine;
use crate::key::pattern::BoundTemplate;
use crate::key::site::SiteBinding;
use crate::key::template::{Template, TemplateKind};
use crate::ttl::TtlPolicy;

/// The attribute's arguments, as static data: one variant per attribute.
#[derive(Debug)]
pub enum SiteSpec {
    /// `#[cached]`
    Cached(CachedSpec),
    /// `#[cache_put]`
    Put(PutSpec),
    /// `#[cache_evict]`
    Evict(EvictSpec),
}

/// `#[cached]`: the entry it reads, and how its loads run.
#[derive(Debug)]
pub struct CachedSpec {
    /// The entry.
    pub entry: EntrySpec,
    /// The load options of the attribute's policy; they apply only with `entry.policy`.
    pub loads: LoadSpec,
}

/// `#[cache_put]`: the entry the function's value is written to.
#[derive(Debug)]
pub struct PutSpec {
    /// The entry.
    pub entry: EntrySpec,
}

/// What `#[cached]` and `#[cache_put]` share: the entry they read or write.
#[derive(Debug)]
pub struct EntrySpec {
    /// The key template.
    pub key: &'static str,
    /// Argument slots, in the order `prepare` receives them (`id`, `product.id`, `query:hash`).
    pub args: &'static [&'static str],
    /// Tag templates.
    pub tags: &'static [&'static str],
    /// The TTL policy written in the attribute; `None`: the policy registered for the key (or the
    /// cache's default) applies.
    pub policy: Option<PolicySpec>,
}

/// The durations and limits of a policy written in an attribute.
#[derive(Debug)]
pub struct PolicySpec {
    /// L2 TTL, seconds.
    pub ttl: u64,
    /// L1 TTL, seconds.
    pub l1_ttl: Option<u64>,
    /// Fail-safe stale window, seconds.
    pub stale: Option<u64>,
    /// The largest encoded value cached, bytes.
    pub max_size: Option<u64>,
}

/// The options of `#[cached]` about its loads (all need a policy in the attribute).
#[derive(Debug)]
pub struct LoadSpec {
    /// TTL of cached `None`, seconds.
    pub none_ttl: Option<u64>,
    /// Misses take the fleet lease (`lease = false` turns it off).
    pub lease: bool,
    /// The fraction of the TTL after which a hit reloads in the background.
    pub refresh_ahead: Option<f64>,
    /// How long a load holding a stale value runs before the stale value answers, ms.
    pub soft_timeout_ms: Option<u64>,
    /// How long a load holding a stale value runs before it is abandoned, ms.
    pub hard_timeout_ms: Option<u64>,
}

impl LoadSpec {
    /// The options of a `#[cached]` without any: leased loads, nothing else.
    pub const DEFAULT: LoadSpec = LoadSpec {
        none_ttl: None,
        lease: true,
        refresh_ahead: None,
        soft_timeout_ms: None,
        hard_timeout_ms: None,
    };
}

/// `#[cache_evict]`: what it invalidates (when is the generated code's business).
#[derive(Debug)]
pub struct EvictSpec {
    /// Argument slots, in the order `prepare` receives them.
    pub args: &'static [&'static str],
    /// What is invalidated.
    pub targets: EvictTargets,
}

/// What an evict site invalidates.
#[derive(Debug)]
pub enum EvictTargets {
    /// `all = true`: the cache's whole namespace.
    All,
    /// At least one of a key, tags and a glob pattern.
    Entries {
        /// The key template.
        key: Option<&'static str>,
        /// Tag templates.
        tags: &'static [&'static str],
        /// Glob template.
        pattern: Option<&'static str>,
    },
}

impl PolicySpec {
    fn policy(&self) -> TtlPolicy {
        let secs = Duration::from_secs;
        let mut policy = TtlPolicy::new(secs(self.ttl));
        if let Some(l1) = self.l1_ttl {
            policy = policy.l1_ttl(secs(l1));
        }
        if let Some(stale) = self.stale {
            policy = policy.stale(secs(stale));
        }
        if let Some(bytes) = self.max_size {
            policy = policy.max_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        policy
    }
}

impl LoadSpec {
    fn apply(&self, mut policy: TtlPolicy) -> TtlPolicy {
        let ms = Duration::from_millis;
        if let Some(none) = self.none_ttl {
            policy = policy.negative_ttl(Duration::from_secs(none));
        }
        if let Some(fraction) = self.refresh_ahead {
            policy = policy.refresh_ahead(fraction);
        }
        if let Some(soft) = self.soft_timeout_ms {
            policy = policy.soft_timeout(ms(soft));
        }
        if let Some(hard) = self.hard_timeout_ms {
            policy = policy.hard_timeout(ms(hard));
        }
        policy.lease(self.lease)
    }
}

impl SiteSpec {
    /// The key template, for log lines.
    pub(super) fn key(&self) -> Option<&'static str> {
        match self {
            SiteSpec::Cached(CachedSpec { entry, .. }) | SiteSpec::Put(PutSpec { entry }) => {
                Some(entry.key)
            }
            SiteSpec::Evict(EvictSpec {
                targets: EvictTargets::Entries { key, .. },
                ..
            }) => *key,
            SiteSpec::Evict(_) => None,
        }
    }

    /// The policy written in the attribute, if any.
    fn policy(&self) -> Option<TtlPolicy> {
        match self {
            SiteSpec::Cached(c) => Some(c.loads.apply(c.entry.policy.as_ref()?.policy())),
            SiteSpec::Put(p) => Some(p.entry.policy.as_ref()?.policy()),
            SiteSpec::Evict(_) => None,
        }
    }

    /// The site's templates bound to its slots; for a cached or put site, with its pattern
    /// registered in `engine`.
    pub(super) fn bind(&self, engine: &Engine) -> Result<SiteBinding, crate::Error> {
        let (args, key, tags, glob) = match self {
            SiteSpec::Cached(CachedSpec { entry, .. }) | SiteSpec::Put(PutSpec { entry }) => {
                (entry.args, Some(entry.key), entry.tags, None)
            }
            SiteSpec::Evict(EvictSpec { args, targets }) => match targets {
                EvictTargets::All => (*args, None, &[][..], None),
                EvictTargets::Entries { key, tags, pattern } => (*args, *key, *tags, *pattern),
            },
        };
        let template = |src: &str, kind| {
            let t =
                Template::parse(src, kind).map_err(|source| crate::error::KeyError::Template {
                    template: src.to_owned(),
                    source,
                })?;
            Ok::<_, crate::Error>((BoundTemplate::bind(t.clone(), args)?, t))
        };
        let (key, pattern) = match key {
            Some(src) => {
                let (bound, t) = template(src, TemplateKind::Key)?;
                let pattern = match self {
                    SiteSpec::Evict(_) => None,
                    _ => Some(engine.register_site(&t, self.policy())?),
                };
                (Some(bound), pattern)
            }
            None => (None, None),
        };
        let tags = tags
            .iter()
            .map(|t| template(t, TemplateKind::Tag).map(|(b, _)| b))
            .collect::<Result<Vec<_>, _>>()?;
        let glob = glob
            .map(|g| template(g, TemplateKind::Glob).map(|(b, _)| b))
            .transpose()?;
        Ok(SiteBinding::new(pattern, key, tags, glob)?)
    }

    /// Whether the site invalidates (`#[cache_evict]`), and whether it clears the namespace.
    pub(super) fn evicts(&self) -> Option<bool> {
        match self {
            SiteSpec::Evict(e) => Some(matches!(e.targets, EvictTargets::All)),
            _ => None,
        }
    }
}
