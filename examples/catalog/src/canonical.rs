//! The canonical form of the listing and search queries, which their cache keys are built from
//! (`prods:cat:<cat>:<query:hash>`, `search:<query:hash>`): equivalent URLs share one entry, so
//! that a client cannot multiply Redis entries by respelling one query (issue 14).
//!
//! - defaults are dropped: `page=1`, `per_page=20` and `min_price=0` are the same as absent (and
//!   `sort=popular`, which serde already reads as the default);
//! - parameters are ordered: the key hashes the struct's fields in their fixed order, whatever the
//!   order of the URL's parameters;
//! - a search's terms are the words full-text search sees (split on what is not a letter or a
//!   digit, at most 16, as `repo/search.rs` splits them), case-folded and joined by one space, so
//!   `q=Red%20%20Shoe`, `q=red shoe` and `q=RED-shoe` are one entry.
//!
//! Owns the canonicalisation only: the routes call it, the repository's keys hash its result.

use crate::domain::{DEFAULT_PER_PAGE, ListQuery, SearchQuery};

/// How many words of a search full-text search uses (`fts_query` in `repo/search.rs`).
const SEARCH_WORDS: usize = 16;

impl ListQuery {
    /// The query with its defaults dropped: what the listing's cache key hashes.
    pub fn canonical(&self) -> ListQuery {
        ListQuery {
            category: self.category,
            brand: self.brand.clone(),
            // Prices are never negative: `min_price=0` (or `-0`) filters nothing.
            min_price: self.min_price.filter(|&p| p > 0.0),
            max_price: self.max_price.map(|p| p + 0.0), // -0.0 and 0.0 are one price
            sort: self.sort,
            page: self.page.filter(|&p| p != 1),
            per_page: self.per_page.filter(|&n| n != DEFAULT_PER_PAGE),
        }
    }
}

impl SearchQuery {
    /// The query with its defaults dropped and its terms as full-text search sees them,
    /// case-folded: what the search's cache key hashes.
    pub fn canonical(&self) -> SearchQuery {
        let words: Vec<String> = self
            .q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(SEARCH_WORDS)
            .map(str::to_lowercase)
            .collect();
        SearchQuery {
            q: words.join(" "),
            category: self.category,
            page: self.page.filter(|&p| p != 1),
            per_page: self.per_page.filter(|&n| n != DEFAULT_PER_PAGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Sort;

    use super::*;

    #[test]
    fn equivalent_listings_are_one_query() {
        let bare = ListQuery::default();
        let explicit = ListQuery {
            page: Some(1),
            per_page: Some(DEFAULT_PER_PAGE),
            sort: Sort::Popular,
            min_price: Some(0.0),
            ..ListQuery::default()
        };
        assert_eq!(explicit.canonical(), bare.canonical());
        let page_two = ListQuery {
            page: Some(2),
            ..ListQuery::default()
        };
        assert_ne!(page_two.canonical(), bare.canonical());
        let by_price = ListQuery {
            max_price: Some(-0.0),
            ..ListQuery::default()
        };
        let zero = ListQuery {
            max_price: Some(0.0),
            ..ListQuery::default()
        };
        assert_eq!(
            format!("{:?}", by_price.canonical()),
            format!("{:?}", zero.canonical())
        );
    }

    #[test]
    fn equivalent_searches_are_one_query() {
        let search = |q: &str| SearchQuery {
            q: q.to_owned(),
            ..SearchQuery::default()
        };
        let canonical = search("red shoe").canonical();
        for q in ["Red  Shoe", " red shoe ", "RED-shoe", "red\tshoe"] {
            assert_eq!(search(q).canonical(), canonical, "{q:?}");
        }
        assert_ne!(search("red shoes").canonical(), canonical);
        let many = vec!["w"; 40].join(" ");
        assert_eq!(search(&many).canonical().q.split(' ').count(), SEARCH_WORDS);
    }
}
