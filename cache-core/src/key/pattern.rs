//! A registered key pattern: its compiled template, TTL policy, tags and statistics; and the
//! binding of templates to argument slots ([`BoundTemplate`]), which renders keys.
//!
//! Owns rendering and the pattern's state (private, read through accessors). Never touches a
//! tier: counters are bumped by the engine.

use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;

use super::template::{Segment, Template, TemplateKind};
use super::{Key, KeyArg, KeyBuf, KeyText, Tags};
use crate::error::KeyError;
use crate::metrics::PatternStats;
use crate::ttl::TtlPolicy;

/// A template whose placeholders are bound to positions in an argument list, as the pieces a
/// render copies or fills: binding resolved every placeholder, so rendering cannot meet an
/// unbound one.
#[derive(Debug, Clone)]
pub(crate) struct BoundTemplate {
    template: Template,
    parts: Vec<Part>,
}

/// One piece of a bound template.
#[derive(Debug, Clone)]
enum Part {
    /// Text copied as is.
    Text(String),
    /// The argument at `slot`, escaped (or hashed, for a `:hash` placeholder).
    Arg {
        slot: usize,
        hash: bool,
        /// The placeholder's spec (`id`, `query:hash`), for errors.
        spec: String,
    },
}

impl BoundTemplate {
    /// Binds the placeholders of `template` to `args`, a list of argument specs (`id`,
    /// `product.id`, `query:hash`).
    pub(crate) fn bind(template: Template, args: &[impl AsRef<str>]) -> Result<Self, KeyError> {
        let parts = template
            .segments()
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => Ok(Part::Text(text.clone())),
                Segment::Placeholder(p) => {
                    let spec = p.spec();
                    match args.iter().position(|a| a.as_ref() == spec) {
                        Some(slot) => Ok(Part::Arg {
                            slot,
                            hash: p.hash,
                            spec,
                        }),
                        None => Err(KeyError::UnknownPlaceholder {
                            template: template.source().to_owned(),
                            placeholder: spec,
                        }),
                    }
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(BoundTemplate { template, parts })
    }

    /// Binds a template to its own placeholders, in order of first appearance (the order of
    /// [`own_specs`]): each placeholder takes the slot of its spec's first appearance.
    pub(crate) fn own(template: Template) -> Self {
        let mut specs: Vec<String> = Vec::new();
        let parts = template
            .segments()
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => Part::Text(text.clone()),
                Segment::Placeholder(p) => {
                    let spec = p.spec();
                    let slot = match specs.iter().position(|s| *s == spec) {
                        Some(slot) => slot,
                        None => {
                            specs.push(spec.clone());
                            specs.len() - 1
                        }
                    };
                    Part::Arg {
                        slot,
                        hash: p.hash,
                        spec,
                    }
                }
            })
            .collect();
        BoundTemplate { template, parts }
    }

    pub(crate) fn template(&self) -> &Template {
        &self.template
    }

    /// The slot of each placeholder, in order.
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Arg { slot, .. } => Some(*slot),
            Part::Text(_) => None,
        })
    }

    /// How many arguments a render takes: one past the highest slot.
    fn arity(&self) -> usize {
        self.slots().max().map_or(0, |m| m + 1)
    }

    /// Renders into `out`. Literals are copied; values are escaped or hashed by their `KeyArg`.
    pub(crate) fn render_into(
        &self,
        args: &[&dyn KeyArg],
        out: &mut impl KeyText,
    ) -> Result<(), KeyError> {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_text(text),
                Part::Arg { slot, hash, spec } => {
                    // `ok_or_else`: the error owns a copy of the template, built only on failure.
                    let arg = args.get(*slot).ok_or_else(|| KeyError::Arity {
                        template: self.template.source().to_owned(),
                        expected: self.arity(),
                        got: args.len(),
                    })?;
                    if arg.is_hashed() != *hash {
                        return Err(KeyError::HashMismatch {
                            placeholder: spec.clone(),
                        });
                    }
                    out.push_arg(*arg)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn render(&self, args: &[&dyn KeyArg]) -> Result<String, KeyError> {
        let mut out = String::with_capacity(self.template.source().len() + 16);
        self.render_into(args, &mut out)?;
        Ok(out)
    }
}

/// The deduplicated placeholder specs of a template, in order of first appearance.
pub(crate) fn own_specs(template: &Template) -> Vec<String> {
    let mut specs: Vec<String> = Vec::new();
    for p in template.placeholders() {
        let spec = p.spec();
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    specs
}

struct PatternEntry {
    /// Its index in the registry of its cache.
    id: u32,
    key: BoundTemplate,
    tags: Vec<BoundTemplate>,
    /// The rendered tags when every tag template is literal, shared by every key.
    static_tags: Option<Tags>,
    policy: TtlPolicy,
    stats: PatternStats,
}

/// A registered key pattern such as `prod:<id>`: renders keys and carries the TTL policy, the
/// tags and the statistics of every key rendered from it.
///
/// Obtain one from [`Cache::register`](crate::Cache::register); cloning is cheap.
#[derive(Clone)]
pub struct Pattern(Arc<PatternEntry>);

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("template", &self.template())
            .field("policy", &self.0.policy)
            .field(
                "tags",
                &self
                    .0
                    .tags
                    .iter()
                    .map(|t| t.template().source())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Pattern {
    pub(crate) fn new(
        id: u32,
        key: Template,
        tags: Vec<Template>,
        policy: TtlPolicy,
    ) -> Result<Self, KeyError> {
        debug_assert_eq!(key.kind(), TemplateKind::Key);
        let specs = own_specs(&key);
        let tags = tags
            .into_iter()
            .map(|t| BoundTemplate::bind(t, &specs))
            .collect::<Result<Vec<_>, _>>()?;
        let static_tags = tags.iter().all(|t| t.template().is_literal()).then(|| {
            tags.iter()
                .map(|t| Arc::<str>::from(t.template().source()))
                .collect()
        });
        Ok(Pattern(Arc::new(PatternEntry {
            id,
            key: BoundTemplate::own(key),
            tags,
            static_tags,
            policy,
            stats: PatternStats::default(),
        })))
    }

    /// The template text, e.g. `prod:<id>`.
    pub fn template(&self) -> &str {
        self.0.key.template().source()
    }

    /// The TTL policy of every key of this pattern.
    pub fn policy(&self) -> &TtlPolicy {
        &self.0.policy
    }

    /// Its id in the registry of its cache (what L1 entries carry).
    #[inline]
    pub(crate) fn id(&self) -> u32 {
        self.0.id
    }

    /// The live counters of every key of this pattern.
    #[inline]
    pub(crate) fn stats(&self) -> &PatternStats {
        &self.0.stats
    }

    /// Whether `other` is this very pattern (not merely one with the same id in another cache).
    pub(crate) fn is_same(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The placeholder specs that [`Pattern::key`] takes, in order (`id`, `query:hash`, ...).
    pub fn arguments(&self) -> Vec<String> {
        own_specs(self.0.key.template())
    }

    /// Renders a key from its arguments, in the order of [`Pattern::arguments`]. Tag templates
    /// registered with the pattern are rendered from the same arguments.
    ///
    /// ```
    /// # async fn demo() -> Result<(), cache_core::Error> {
    /// use cache_core::{Cache, PatternConfig, TtlPolicy, key::Hashed};
    /// use std::time::Duration;
    /// let cache = Cache::builder().namespace("docs").build().await?;
    /// let prod = cache.register(PatternConfig::new("prod:<id>", TtlPolicy::new(Duration::from_secs(1800))))?;
    /// assert_eq!(prod.key(&[&42u64])?.as_str(), "prod:42");
    /// let search = cache.register(
    ///     PatternConfig::new("search:<q:hash>", TtlPolicy::new(Duration::from_secs(600))).tag("search"),
    /// )?;
    /// let key = search.key(&[&Hashed(&("red shoes", 1))])?;
    /// assert_eq!(key.tags().collect::<Vec<_>>(), ["search"]);
    /// # Ok(()) }
    /// ```
    pub fn key(&self, args: &[&dyn KeyArg]) -> Result<Key, KeyError> {
        let expected = self.0.key.arity();
        if args.len() != expected {
            return Err(KeyError::Arity {
                template: self.template().to_owned(),
                expected,
                got: args.len(),
            });
        }
        let mut text = KeyBuf::new();
        self.0.key.render_into(args, &mut text)?;
        let tags = self.render_tags(&self.0.tags, args)?;
        Ok(Key {
            text: CompactString::new(text.as_str()),
            pattern: self.clone(),
            tags,
        })
    }

    /// Renders tag templates bound to `args`, reusing the shared literal tags when possible.
    pub(crate) fn render_tags(
        &self,
        tags: &[BoundTemplate],
        args: &[&dyn KeyArg],
    ) -> Result<Tags, KeyError> {
        if std::ptr::eq(tags, self.0.tags.as_slice())
            && let Some(shared) = &self.0.static_tags
        {
            return Ok(shared.clone());
        }
        tags.iter()
            .map(|t| t.render(args).map(Arc::<str>::from))
            .collect()
    }

    /// The pattern's tag templates, rebound to the arguments of a macro call site whose key
    /// template `site_key` has this pattern's shape (`prod:<product.id>` for `prod:<id>`): a tag
    /// placeholder takes the site's argument at the position its name first takes in the key.
    /// A site key of another shape is an error (the registry only binds sites of the same shape).
    pub(crate) fn tags_for_site(
        &self,
        site_key: &BoundTemplate,
    ) -> Result<Vec<BoundTemplate>, KeyError> {
        let own: Vec<usize> = self.0.key.slots().collect();
        let site: Vec<usize> = site_key.slots().collect();
        let rebind = |tag: &BoundTemplate| {
            let parts = tag
                .parts
                .iter()
                .map(|part| match part {
                    Part::Text(text) => Ok(Part::Text(text.clone())),
                    Part::Arg { slot, hash, spec } => own
                        .iter()
                        .zip(&site)
                        .find_map(|(&o, &s)| (o == *slot).then_some(s))
                        .map(|slot| Part::Arg {
                            slot,
                            hash: *hash,
                            spec: spec.clone(),
                        })
                        .ok_or_else(|| KeyError::UnknownPlaceholder {
                            template: site_key.template.source().to_owned(),
                            placeholder: spec.clone(),
                        }),
                })
                .collect::<Result<_, _>>()?;
            Ok(BoundTemplate {
                template: tag.template.clone(),
                parts,
            })
        };
        self.0.tags.iter().map(rebind).collect()
    }

    /// The pattern's rendered tags when all are literal, shared by every key.
    pub(crate) fn static_tags(&self) -> Option<&Tags> {
        self.0.static_tags.as_ref()
    }

    /// `true` when tags are registered with the pattern.
    pub(crate) fn has_tags(&self) -> bool {
        !self.0.tags.is_empty()
    }

    /// A key rendered elsewhere (by a macro call site, with its own argument binding). `tags`
    /// must already include the pattern's (see [`Pattern::tags_for_site`]).
    pub(crate) fn key_from_parts(&self, text: &str, tags: Tags) -> Key {
        Key {
            text: CompactString::new(text),
            pattern: self.clone(),
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Hashed;
    use std::time::Duration;

    fn pattern(src: &str, tags: &[&str]) -> Pattern {
        let tags = tags
            .iter()
            .map(|t| Template::parse(t, TemplateKind::Tag).unwrap())
            .collect();
        Pattern::new(
            0,
            Template::parse(src, TemplateKind::Key).unwrap(),
            tags,
            TtlPolicy::new(Duration::from_secs(60)),
        )
        .unwrap()
    }

    #[test]
    fn renders_injectively() {
        let p = pattern("pair:<a>:<b>", &[]);
        let k1 = p.key(&[&"1:2", &"3"]).unwrap();
        let k2 = p.key(&[&"1", &"2:3"]).unwrap();
        assert_ne!(k1.as_str(), k2.as_str());
        assert_eq!(k1.as_str(), "pair:1%3A2:3");
        let k3 = p.key(&[&"*", &"?"]).unwrap();
        assert_eq!(k3.as_str(), "pair:%2A:%3F");
    }

    #[test]
    fn renders_tags_from_key_arguments() {
        let p = pattern("prod:<id>:<cat>", &["products", "cat:<cat>"]);
        let k = p.key(&[&7, &3]).unwrap();
        assert_eq!(k.tags().collect::<Vec<_>>(), ["products", "cat:3"]);
        let p = pattern("prod:<id>", &["products"]);
        let (a, b) = (p.key(&[&1]).unwrap(), p.key(&[&2]).unwrap());
        assert!(
            Arc::ptr_eq(&a.tags, &b.tags),
            "literal tags are shared, not rendered per key"
        );
    }

    #[test]
    fn rebinds_tags_to_a_site_with_other_names() {
        let p = pattern("prod:<id>:<cat>", &["products", "cat:<cat>", "p:<id>"]);
        // A macro site `prod:<product.id>:<product.category>`, arguments in its own order.
        let site = BoundTemplate::bind(
            Template::parse("prod:<product.id>:<product.category>", TemplateKind::Key).unwrap(),
            &["other", "product.category", "product.id"],
        )
        .unwrap();
        let tags = p.tags_for_site(&site).unwrap();
        let args: [&dyn KeyArg; 3] = [&"x", &3, &7];
        let rendered: Vec<String> = tags.iter().map(|t| t.render(&args).unwrap()).collect();
        assert_eq!(rendered, ["products", "cat:3", "p:7"]);
    }

    #[test]
    fn a_site_of_another_shape_is_an_error_not_a_panic() {
        let p = pattern("prod:<id>:<cat>", &["cat:<cat>"]);
        let site = BoundTemplate::bind(
            Template::parse("prod:<id>", TemplateKind::Key).unwrap(),
            &["id"],
        )
        .unwrap();
        assert!(matches!(
            p.tags_for_site(&site),
            Err(KeyError::UnknownPlaceholder { .. })
        ));
    }

    #[test]
    fn rejects_wrong_arguments() {
        let p = pattern("search:<q:hash>", &[]);
        assert!(matches!(
            p.key(&[&"plain"]),
            Err(KeyError::HashMismatch { .. })
        ));
        assert!(matches!(p.key(&[]), Err(KeyError::Arity { .. })));
        assert!(p.key(&[&Hashed(&"x")]).is_ok());
        let tags = vec![Template::parse("cat:<nope>", TemplateKind::Tag).unwrap()];
        let r = Pattern::new(
            0,
            Template::parse("p:<id>", TemplateKind::Key).unwrap(),
            tags,
            TtlPolicy::new(Duration::from_secs(1)),
        );
        assert!(matches!(r, Err(KeyError::UnknownPlaceholder { .. })));
    }
}
