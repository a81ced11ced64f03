//! The catalog's types: what the repository returns and caches, what the API accepts, and the
//! validation of input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest page size a listing or search accepts.
pub const MAX_PER_PAGE: u32 = 100;
/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Longest search query, autocomplete prefix, name or description accepted (in characters).
pub const MAX_QUERY_LEN: usize = 200;
/// Longest product description accepted (in characters).
pub const MAX_DESCRIPTION_LEN: usize = 5_000;

/// Largest stock of a variant (and largest stock change). Bounded so that sums over every
/// variant fit an `i64` (SQLite's integer `SUM` fails on overflow) and `stock + delta` cannot
/// overflow.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Largest `popularity` and `sales` of a product, for the same reason.
pub const MAX_COUNTER: i64 = 1_000_000_000_000;

/// Deepest a category may sit: its `depth` (0 for a root) is at most this, so the tree has at
/// most 33 levels. A create or move that would pass it is refused (422); walks of the tree stop
/// there, so that even a database edited by hand (a deeper chain, a cycle) cannot make them
/// unbounded.
pub const MAX_CATEGORY_DEPTH: i64 = 32;

/// Why input was refused. [`Malformed`](InputError::Malformed) (a bad number, a missing or too
/// long value) is answered 400; [`Unacceptable`](InputError::Unacceptable) (well-formed text
/// holding characters the catalog refuses to store or echo) 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    Malformed(String),
    Unacceptable(String),
}

impl InputError {
    pub fn message(&self) -> &str {
        match self {
            InputError::Malformed(m) | InputError::Unacceptable(m) => m,
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<String> for InputError {
    fn from(message: String) -> InputError {
        InputError::Malformed(message)
    }
}

impl From<&str> for InputError {
    fn from(message: &str) -> InputError {
        InputError::Malformed(message.to_owned())
    }
}

/// A category: a node of the category tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    /// 0 for a root.
    pub depth: i64,
}

/// The category tree, for `/categories/tree`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryNode {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub children: Vec<CategoryNode>,
}

/// A product, without its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub price: f64,
    pub category_id: i64,
    pub attributes: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
    pub popularity: i64,
    /// Units sold (what top sellers rank by).
    pub sales: i64,
}

/// A variant of a product: a colour and size with its stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub id: i64,
    pub product_id: i64,
    pub colour: String,
    pub size: String,
    pub stock: i64,
}

/// A product with its variants (and so its stock): `/products/{id}`, `/products/sku/{sku}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDetail {
    pub product: Product,
    pub variants: Vec<Variant>,
    pub total_stock: i64,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

impl<T> Page<T> {
    /// Consecutive pages `first, first + 1, …` (`pages` of them, at least one) of `per_page`
    /// items each, cut from `items`, the rows of all of them read at once (`LIMIT per_page *
    /// pages OFFSET (first - 1) * per_page`): each is the page that its own query reads (a page
    /// past the end is empty, as it is when requested).
    pub fn consecutive(
        items: Vec<T>,
        first: u32,
        per_page: u32,
        total: u64,
        pages: u32,
    ) -> Vec<Page<T>> {
        let per = usize::try_from(per_page).unwrap_or(usize::MAX);
        let mut rows = items.into_iter();
        (0..pages.max(1))
            .map(|i| Page {
                items: rows.by_ref().take(per).collect(),
                page: first + i,
                per_page,
                total,
            })
            .collect()
    }
}

/// One value of a facet with the number of products that have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facet {
    pub value: String,
    pub count: u64,
}

/// Facet counts of a category (or of the whole catalog), for `/filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    pub category: Option<i64>,
    pub total: u64,
    pub brands: Vec<Facet>,
    pub price_ranges: Vec<Facet>,
    pub colours: Vec<Facet>,
    pub materials: Vec<Facet>,
}

/// A colour of the catalog's variants: `/colors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColourCount {
    pub colour: String,
    /// Products with at least one variant of this colour.
    pub products: u64,
    pub variants: u64,
}

/// Most values listed per attribute by `/categories/{id}/attributes` (the most common first).
pub const MAX_ATTRIBUTE_VALUES: usize = 20;

/// One attribute of the products of a category's subtree: `/categories/{id}/attributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeFacet {
    pub name: String,
    /// Products that have the attribute.
    pub products: u64,
    pub distinct_values: u64,
    /// The most common values (at most [`MAX_ATTRIBUTE_VALUES`]) with their product counts.
    pub values: Vec<Facet>,
}

/// One attribute over the whole catalog: `/stats/attributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeStats {
    pub name: String,
    pub products: u64,
    pub distinct_values: u64,
}

/// Counts over the products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductStats {
    pub products: u64,
    pub variants: u64,
    pub total_stock: i64,
    pub brands: u64,
    pub average_price: f64,
    pub min_price: f64,
    pub max_price: f64,
    pub total_sales: i64,
}

/// Counts over the categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryStats {
    pub categories: u64,
    pub roots: u64,
    pub leaves: u64,
    pub max_depth: i64,
}

/// Price statistics of the products in one root category's subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryPrices {
    pub category_id: i64,
    pub name: String,
    pub products: u64,
    /// 0 when the category has no products (as are `max_price` and `average_price`).
    pub min_price: f64,
    pub max_price: f64,
    pub average_price: f64,
}

/// `/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub products: ProductStats,
    pub categories: CategoryStats,
    /// Price statistics per root category (its whole subtree), by category id.
    pub price_by_category: Vec<CategoryPrices>,
}

/// Order of a product listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Popular,
    PriceAsc,
    PriceDesc,
    Newest,
    Name,
    TopSelling,
}

impl Sort {
    /// The `ORDER BY` clause (a fixed string: never built from input).
    pub fn order_by(self) -> &'static str {
        match self {
            Sort::Popular => "p.popularity DESC, p.id",
            Sort::PriceAsc => "p.price ASC, p.id",
            Sort::PriceDesc => "p.price DESC, p.id",
            Sort::Newest => "p.created_at DESC, p.id DESC",
            Sort::Name => "p.name ASC, p.id",
            Sort::TopSelling => "p.sales DESC, p.id",
        }
    }
}

/// `GET /products?category=&brand=&min_price=&max_price=&sort=&page=&per_page=`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub category: Option<i64>,
    pub brand: Option<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    #[serde(default)]
    pub sort: Sort,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl ListQuery {
    /// Checks the query; the error says what is wrong.
    pub fn validate(&self) -> Result<(), InputError> {
        check_page(self.page, self.per_page)?;
        for (name, v) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(format!("{name} must be a non-negative number, got {v}").into());
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price)
            && lo > hi
        {
            return Err(format!("min_price ({lo}) is above max_price ({hi})").into());
        }
        if let Some(b) = &self.brand {
            check_text("brand", b, MAX_QUERY_LEN)?;
        }
        if let Some(c) = self.category {
            check_id("category", c)?;
        }
        Ok(())
    }

    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1)
    }

    pub fn per_page(&self) -> u32 {
        self.per_page.unwrap_or(DEFAULT_PER_PAGE)
    }

    /// `LIMIT` and `OFFSET` of the rows of `pages` consecutive pages from this query's page on.
    pub fn rows(&self, pages: u32) -> (u64, u64) {
        let per_page = u64::from(self.per_page());
        (
            per_page * u64::from(pages.max(1)),
            (u64::from(self.page()) - 1) * per_page,
        )
    }
}

/// `GET /search?q=&category=&page=&per_page=`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    pub category: Option<i64>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl SearchQuery {
    /// Checks the query; the error says what is wrong.
    pub fn validate(&self) -> Result<(), InputError> {
        check_page(self.page, self.per_page)?;
        if self.q.trim().is_empty() {
            return Err("q must not be empty".into());
        }
        check_text("q", &self.q, MAX_QUERY_LEN)?;
        if let Some(c) = self.category {
            check_id("category", c)?;
        }
        Ok(())
    }

    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1)
    }

    pub fn per_page(&self) -> u32 {
        self.per_page.unwrap_or(DEFAULT_PER_PAGE)
    }
}

/// `GET /filters?category=`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersQuery {
    pub category: Option<i64>,
}

/// `GET /autocomplete?prefix=`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutocompleteQuery {
    pub prefix: String,
}

impl AutocompleteQuery {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.prefix.trim().is_empty() {
            return Err("prefix must not be empty".into());
        }
        check_text("prefix", &self.prefix, MAX_QUERY_LEN)
    }
}

/// The body of `POST`/`PUT /products/{id}`: the whole product (a `PUT` replaces it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub brand: String,
    pub price: f64,
    pub category_id: i64,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub popularity: i64,
    #[serde(default)]
    pub sales: i64,
    /// Variants to create with the product (`POST` only; ignored by `PUT`, which keeps them).
    #[serde(default)]
    pub variants: Vec<VariantInput>,
}

impl ProductInput {
    /// Checks the product; the error says what is wrong.
    pub fn validate(&self) -> Result<(), InputError> {
        check_text("sku", &self.sku, 64)?;
        if !self
            .sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("sku may hold only letters, digits, '-' and '_'".into());
        }
        check_text("name", &self.name, MAX_QUERY_LEN)?;
        check_text("brand", &self.brand, MAX_QUERY_LEN)?;
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(
                format!("description is longer than {MAX_DESCRIPTION_LEN} characters").into(),
            );
        }
        check_chars("description", &self.description, true)?;
        if !self.price.is_finite() || self.price < 0.0 {
            return Err(format!("price must be a non-negative number, got {}", self.price).into());
        }
        if self.price > 1e9 {
            return Err("price is too large".into());
        }
        check_id("category_id", self.category_id)?;
        if self.popularity < 0 || self.sales < 0 {
            return Err("popularity and sales must not be negative".into());
        }
        if self.popularity > MAX_COUNTER || self.sales > MAX_COUNTER {
            return Err(format!("popularity and sales must be at most {MAX_COUNTER}").into());
        }
        if self.attributes.len() > 50 {
            return Err("at most 50 attributes".into());
        }
        for (k, v) in &self.attributes {
            check_text("attribute name", k, 64)?;
            if v.chars().count() > MAX_QUERY_LEN {
                return Err(format!("attribute {k} is too long").into());
            }
            check_chars(&format!("attribute {k}"), v, false)?;
        }
        if self.variants.len() > 100 {
            return Err("at most 100 variants".into());
        }
        for v in &self.variants {
            v.validate()?;
        }
        Ok(())
    }
}

/// A variant to create with a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    pub colour: String,
    pub size: String,
    #[serde(default)]
    pub stock: i64,
}

impl VariantInput {
    pub fn validate(&self) -> Result<(), InputError> {
        check_text("colour", &self.colour, 64)?;
        check_text("size", &self.size, 16)?;
        if self.stock < 0 {
            return Err(format!("stock must not be negative, got {}", self.stock).into());
        }
        if self.stock > MAX_STOCK {
            return Err(format!("stock must be at most {MAX_STOCK}, got {}", self.stock).into());
        }
        Ok(())
    }
}

/// The body of `POST`/`PUT /categories/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    pub name: String,
    pub slug: Option<String>,
    pub parent_id: Option<i64>,
}

impl CategoryInput {
    pub fn validate(&self) -> Result<(), InputError> {
        check_text("name", &self.name, MAX_QUERY_LEN)?;
        if let Some(slug) = &self.slug {
            check_text("slug", slug, MAX_QUERY_LEN)?;
            if !slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err("slug may hold only lowercase letters, digits and '-'".into());
            }
        }
        if let Some(p) = self.parent_id {
            check_id("parent_id", p)?;
        }
        Ok(())
    }

    /// The slug: given, or made from the name.
    pub fn slug_or_default(&self) -> String {
        match &self.slug {
            Some(s) => s.clone(),
            None => slugify(&self.name),
        }
    }
}

/// The body of `POST /products/{id}/variants/{vid}/stock`: a change of stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockChange {
    /// Negative to reduce, positive to increase.
    pub delta: i64,
    #[serde(default)]
    pub reason: Option<String>,
}

impl StockChange {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.delta == 0 {
            return Err("delta must not be zero".into());
        }
        if self.delta.unsigned_abs() > 1_000_000 {
            return Err("delta is too large".into());
        }
        if let Some(r) = &self.reason {
            check_text("reason", r, MAX_QUERY_LEN)?;
        }
        Ok(())
    }
}

/// What a stock change did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockMovement {
    pub id: i64,
    pub variant_id: i64,
    pub delta: i64,
    pub reason: String,
    pub created_at: i64,
    pub stock_after: i64,
}

/// A lowercase, dash-separated slug.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// Checks an id from input: positive.
pub fn check_id(name: &str, id: i64) -> Result<(), String> {
    if id <= 0 {
        return Err(format!("{name} must be a positive integer, got {id}"));
    }
    Ok(())
}

/// Checks a one-line text field: not blank, at most `max` characters, no refused character
/// (see [`refused_char`]; a 422).
fn check_text(name: &str, value: &str, max: usize) -> Result<(), InputError> {
    if value.trim().is_empty() {
        return Err(format!("{name} must not be empty").into());
    }
    if value.chars().count() > max {
        return Err(format!("{name} is longer than {max} characters").into());
    }
    check_chars(name, value, false)
}

/// Refuses the characters of `value` that [`refused_char`] names; with `multiline`, line feeds
/// and tabs are allowed (a description).
fn check_chars(name: &str, value: &str, multiline: bool) -> Result<(), InputError> {
    match value
        .chars()
        .find(|&c| refused_char(c) && !(multiline && (c == '\n' || c == '\t')))
    {
        None => Ok(()),
        Some(c) => Err(InputError::Unacceptable(format!(
            "{name} must not contain control, bidirectional-override or line-separator \
             characters (found U+{:04X})",
            u32::from(c)
        ))),
    }
}

/// Characters never accepted in text: control characters (C0, DEL, C1), the bidirectional
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069: they make text display in
/// an order other than the one stored, "Trojan Source") and the line and paragraph separators
/// (U+2028, U+2029: line breaks to some readers, not to others).
pub fn refused_char(c: char) -> bool {
    c.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
        || c == '\u{2028}'
        || c == '\u{2029}'
}

fn check_page(page: Option<u32>, per_page: Option<u32>) -> Result<(), String> {
    if page == Some(0) {
        return Err("page starts at 1".to_owned());
    }
    if page.is_some_and(|p| p > 10_000) {
        return Err("page must be at most 10000".to_owned());
    }
    match per_page {
        Some(0) => Err("per_page must be at least 1".to_owned()),
        Some(n) if n > MAX_PER_PAGE => {
            Err(format!("per_page must be at most {MAX_PER_PAGE}, got {n}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_pages_cut_the_rows_as_each_page_query_would() {
        let pages = Page::consecutive((1..=7).collect::<Vec<u32>>(), 2, 3, 10, 4);
        let cut: Vec<(u32, Vec<u32>)> = pages.iter().map(|p| (p.page, p.items.clone())).collect();
        assert_eq!(
            cut,
            [
                (2, vec![1, 2, 3]),
                (3, vec![4, 5, 6]),
                (4, vec![7]),
                (5, vec![])
            ]
        );
        assert!(pages.iter().all(|p| p.per_page == 3 && p.total == 10));
        let query = ListQuery {
            page: Some(3),
            per_page: Some(20),
            ..ListQuery::default()
        };
        assert_eq!(query.rows(5), (100, 40));
        assert_eq!(ListQuery::default().rows(1), (20, 0));
    }

    #[test]
    fn text_refuses_control_bidi_and_separator_characters() {
        for c in [
            '\0', '\u{7}', '\n', '\r', '\u{7F}', '\u{85}', '\u{9F}', '\u{202A}', '\u{202B}',
            '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
            '\u{2028}', '\u{2029}',
        ] {
            assert!(refused_char(c), "U+{:04X}", u32::from(c));
            let input = CategoryInput {
                name: format!("a{c}b"),
                slug: None,
                parent_id: None,
            };
            assert!(
                matches!(input.validate(), Err(InputError::Unacceptable(_))),
                "U+{:04X}",
                u32::from(c)
            );
        }
        for c in ['a', 'é', '中', '\u{200D}', '\u{05D0}', ' ', '🙂'] {
            assert!(!refused_char(c), "{c}");
        }
        assert!(check_chars("description", "line\n\tnext", true).is_ok());
        assert!(check_chars("description", "line\u{2028}next", true).is_err());
        assert!(matches!(
            CategoryInput {
                name: "x".repeat(MAX_QUERY_LEN + 1),
                slug: None,
                parent_id: None
            }
            .validate(),
            Err(InputError::Malformed(_))
        ));
    }
}
