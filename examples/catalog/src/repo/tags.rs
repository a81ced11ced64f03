//! The catalog's cache tags, in one place (the README's table says which read carries which).
//!
//! Writes and `catalog clear` invalidate through these names. The reads declare their tags as
//! string literals in `#[cached(tags = [..])]`, because the macro takes tag templates as literals
//! (parsed at compile time); the test below checks that every literal there is a tag named here,
//! and that every tag named here is carried by some read.

/// Every product-derived read (for `catalog clear --products`).
pub const PRODUCTS: &str = "products";
/// Every category read.
pub const CATEGORIES: &str = "categories";
/// Search and autocomplete.
pub const SEARCH: &str = "search";
/// Top sellers, new arrivals, most popular.
pub const RANKINGS: &str = "rankings";
/// Recommendations.
pub const RECS: &str = "recs";
/// Statistics.
pub const STATS: &str = "stats";
/// The colours of the variants (changed by product creation and deletion).
pub const COLORS: &str = "colors";
/// The one statistic a stock change alters.
pub const STOCK: &str = "stock";

/// The tags a product write invalidates besides its listings (its own keys are evicted).
pub const PRODUCT_WRITE: [&str; 4] = [SEARCH, RANKINGS, RECS, STATS];

/// `product:<id>`: the HTTP body of product `id`'s detail (`http/bodies.rs`), which writes evict
/// beside the product's own keys.
pub const PRODUCT_TEMPLATE: &str = "product:<id>";

/// [`PRODUCT_TEMPLATE`] for product `id`.
pub fn product(id: i64) -> String {
    format!("product:{id}")
}

/// `listing:<c>`: the listings, filters and attributes of category `c`'s subtree (`0`: the whole
/// catalog).
pub fn listing(category: i64) -> String {
    format!("listing:{category}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sources of every module whose reads declare tags.
    const SOURCES: [(&str, &str); 5] = [
        ("attributes.rs", include_str!("attributes.rs")),
        ("categories.rs", include_str!("categories.rs")),
        ("products.rs", include_str!("products.rs")),
        ("search.rs", include_str!("search.rs")),
        ("stats.rs", include_str!("stats.rs")),
    ];

    /// The template of [`listing`], as the reads declare it.
    const LISTING_TEMPLATE: &str = "listing:<";

    const NAMED: [&str; 8] = [
        PRODUCTS, CATEGORIES, SEARCH, RANKINGS, RECS, STATS, COLORS, STOCK,
    ];

    /// Every tag literal of a `tags = [..]` list in `source`.
    fn declared(source: &str) -> Vec<String> {
        source
            .split("tags = [")
            .skip(1)
            .flat_map(|rest| {
                let list = &rest[..rest.find(']').unwrap_or(rest.len())];
                list.split(',')
                    .map(|t| t.trim().trim_matches('"').to_owned())
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_declared_tag_is_named_here_and_every_name_is_declared() {
        let mut all = Vec::new();
        for (file, source) in SOURCES {
            let tags = declared(source);
            assert!(!tags.is_empty(), "{file}: no tags found");
            for tag in &tags {
                assert!(
                    NAMED.contains(&tag.as_str()) || tag.starts_with(LISTING_TEMPLATE),
                    "{file}: tag {tag:?} is not named in repo/tags.rs"
                );
            }
            all.extend(tags);
        }
        for name in NAMED {
            assert!(
                all.iter().any(|t| t == name),
                "tag {name:?} is carried by no read"
            );
        }
        assert!(all.iter().any(|t| t.starts_with(LISTING_TEMPLATE)));
        assert_eq!(listing(0), "listing:0");
        assert_eq!(product(7), PRODUCT_TEMPLATE.replace("<id>", "7"));
    }

    #[test]
    fn the_source_check_sees_a_stray_tag() {
        let source = r#"#[cached(key = "x", tags = ["products", "typo"])]"#;
        assert_eq!(declared(source), ["products", "typo"]);
        assert!(!NAMED.contains(&"typo"));
    }
}
