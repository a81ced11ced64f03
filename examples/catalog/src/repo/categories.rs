//! Categories: the tree, one category, children; writes.

use std::collections::BTreeMap;

use cache_core::cached;
use rusqlite::{OptionalExtension, params};

use super::{
    CATEGORY_COLUMNS, Invalidates, Repo, ancestors, category_exists, category_row, subtree, tags,
};
use crate::db::DbError;
use crate::domain::{Category, CategoryInput, CategoryNode};

/// What a category write changed, for invalidation.
struct CategoryChange {
    category: Option<Category>,
    /// Categories whose subtree gained or lost products (with their ancestors).
    moved: Vec<i64>,
    /// Categories created or deleted: their listings, filters and attributes may be cached as
    /// "not found" (or, once deleted, as found).
    created_or_deleted: Option<i64>,
}

impl Repo {
    /// Every category, by id.
    #[cached(key = "cat:all", ttl = 1800, tags = ["categories"])]
    pub async fn categories(&self) -> Result<Vec<Category>, DbError> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {CATEGORY_COLUMNS} FROM categories c ORDER BY c.id"
                ))?;
                let rows = stmt
                    .query_map([], category_row)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// The category tree: roots with their children, recursively, ordered by name.
    #[cached(key = "cat:tree", ttl = 1800, tags = ["categories"])]
    pub async fn category_tree(&self) -> Result<Vec<CategoryNode>, DbError> {
        let all = self
            .db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {CATEGORY_COLUMNS} FROM categories c ORDER BY c.name"
                ))?;
                let rows: Vec<Category> = stmt
                    .query_map([], category_row)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut by_parent: BTreeMap<Option<i64>, Vec<&Category>> = BTreeMap::new();
        for c in &all {
            by_parent.entry(c.parent_id).or_default().push(c);
        }
        fn build(
            parent: Option<i64>,
            by_parent: &BTreeMap<Option<i64>, Vec<&Category>>,
        ) -> Vec<CategoryNode> {
            by_parent
                .get(&parent)
                .map(|list| {
                    list.iter()
                        .map(|c| CategoryNode {
                            id: c.id,
                            name: c.name.clone(),
                            slug: c.slug.clone(),
                            children: build(Some(c.id), by_parent),
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        Ok(build(None, &by_parent))
    }

    /// One category.
    #[cached(key = "cat:<id>", ttl = 3600, none_ttl = 60, tags = ["categories"])]
    pub async fn category(&self, id: i64) -> Result<Option<Category>, DbError> {
        self.db
            .read(move |c| {
                let row = c
                    .query_row(
                        &format!("SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.id = ?1"),
                        [id],
                        category_row,
                    )
                    .optional()?;
                Ok(row)
            })
            .await
    }

    /// The children of a category (`None` if it does not exist).
    #[cached(key = "cat:<id>:children", ttl = 1800, none_ttl = 60, tags = ["categories"])]
    pub async fn children(&self, id: i64) -> Result<Option<Vec<Category>>, DbError> {
        self.db
            .read(move |c| {
                if !category_exists(c, id)? {
                    return Ok(None);
                }
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.parent_id = ?1 ORDER BY c.name"
                ))?;
                let rows = stmt.query_map([id], category_row)?.collect::<Result<_, _>>()?;
                Ok(Some(rows))
            })
            .await
    }

    /// The largest categories by number of products (in their subtree), largest first: what
    /// warmup preloads filters and listings of.
    pub async fn largest_categories(&self, limit: usize) -> Result<Vec<i64>, DbError> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "WITH RECURSIVE up(leaf, id) AS (
                        SELECT id, id FROM categories
                        UNION ALL SELECT up.leaf, c.parent_id FROM up JOIN categories c ON c.id = up.id
                        WHERE c.parent_id IS NOT NULL)
                     SELECT up.id, COUNT(*) AS n FROM products p JOIN up ON up.leaf = p.category_id
                     GROUP BY up.id ORDER BY n DESC, up.id LIMIT ?1",
                )?;
                let ids = stmt
                    .query_map([limit as i64], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
    }

    /// Creates a category (with the given id, or the next one).
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn create_category(
        &self,
        id: Option<i64>,
        input: CategoryInput,
    ) -> Result<Category, DbError> {
        let change = self
            .write(move |tx| {
                if let Some(id) = id
                    && category_exists(tx, id)?
                {
                    return Err(DbError::Conflict(format!("category {id} already exists")));
                }
                let depth = parent_depth(tx, input.parent_id)?.map_or(0, |d| d + 1);
                tx.execute(
                    "INSERT INTO categories (id, parent_id, name, slug, depth) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, input.parent_id, input.name, input.slug_or_default(), depth],
                )?;
                let id = tx.last_insert_rowid();
                let category = tx.query_row(
                    &format!("SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.id = ?1"),
                    [id],
                    category_row,
                )?;
                Ok(CategoryChange {
                    category: Some(category),
                    moved: Vec::new(),
                    created_or_deleted: Some(id),
                })
            })
            .await?;
        change
            .category
            .ok_or_else(|| DbError::Internal("category vanished".to_owned()))
    }

    /// Replaces a category's name, slug and parent (moving its subtree).
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn update_category(
        &self,
        id: i64,
        input: CategoryInput,
    ) -> Result<Category, DbError> {
        let change = self
            .write(move |tx| {
                let old_parent: Option<i64> = tx
                    .query_row(
                        "SELECT parent_id FROM categories WHERE id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| DbError::NotFound(format!("category {id} not found")))?;
                let mut moved = Vec::new();
                if old_parent != input.parent_id {
                    if let Some(p) = input.parent_id
                        && subtree(tx, id)?.contains(&p)
                    {
                        return Err(DbError::Invalid(format!(
                            "parent_id {p} is category {id} or one of its descendants"
                        )));
                    }
                    let depth = parent_depth(tx, input.parent_id)?.map_or(0, |d| d + 1);
                    let old_depth: i64 =
                        tx.query_row("SELECT depth FROM categories WHERE id = ?1", [id], |r| {
                            r.get(0)
                        })?;
                    let shift = depth - old_depth;
                    for c in subtree(tx, id)? {
                        tx.execute(
                            "UPDATE categories SET depth = depth + ?1 WHERE id = ?2",
                            params![shift, c],
                        )?;
                    }
                    if let Some(p) = old_parent {
                        moved.extend(ancestors(tx, p)?);
                    }
                    if let Some(p) = input.parent_id {
                        moved.extend(ancestors(tx, p)?);
                    }
                }
                tx.execute(
                    "UPDATE categories SET name = ?1, slug = ?2, parent_id = ?3 WHERE id = ?4",
                    params![input.name, input.slug_or_default(), input.parent_id, id],
                )?;
                let category = tx.query_row(
                    &format!("SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.id = ?1"),
                    [id],
                    category_row,
                )?;
                Ok(CategoryChange {
                    category: Some(category),
                    moved,
                    created_or_deleted: None,
                })
            })
            .await?;
        change
            .category
            .ok_or_else(|| DbError::Internal("category vanished".to_owned()))
    }

    /// Deletes a category that has neither children nor products.
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn delete_category(&self, id: i64) -> Result<(), DbError> {
        self.write(move |tx| {
            if !category_exists(tx, id)? {
                return Err(DbError::NotFound(format!("category {id} not found")));
            }
            let children: i64 = tx.query_row(
                "SELECT COUNT(*) FROM categories WHERE parent_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let products: i64 = tx.query_row(
                "SELECT COUNT(*) FROM products WHERE category_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            if children > 0 || products > 0 {
                return Err(DbError::Conflict(format!(
                    "category {id} still has {children} children and {products} products"
                )));
            }
            tx.execute("DELETE FROM categories WHERE id = ?1", [id])?;
            Ok(CategoryChange {
                category: None,
                moved: Vec::new(),
                created_or_deleted: Some(id),
            })
        })
        .await?;
        Ok(())
    }
}

/// After a committed category write: every category read (one category, children, the tree: a
/// cached "not found" included), statistics; on a move, the listings and the searches
/// (`/search?category=` filters by subtree) of the categories whose subtree changed; on a create
/// or delete, what is keyed by the category's id and may hold a "not found" or an empty answer:
/// its listings, filters and attributes (`listing:<id>`).
impl Invalidates for CategoryChange {
    async fn invalidate(&self, repo: &Repo) {
        repo.cache.invalidate_tag(tags::CATEGORIES).await;
        repo.cache.invalidate_tag(tags::STATS).await;
        if !self.moved.is_empty() {
            repo.invalidate_listings(&self.moved).await;
            repo.cache.invalidate_tag(tags::SEARCH).await;
        }
        if let Some(id) = self.created_or_deleted {
            repo.cache.invalidate_tag(&tags::listing(id)).await;
        }
    }
}

/// The depth of the parent (`None` for no parent); an unknown parent is invalid input.
fn parent_depth(tx: &rusqlite::Connection, parent: Option<i64>) -> Result<Option<i64>, DbError> {
    let Some(p) = parent else {
        return Ok(None);
    };
    tx.query_row("SELECT depth FROM categories WHERE id = ?1", [p], |r| {
        r.get(0)
    })
    .optional()?
    .map(Some)
    .ok_or_else(|| DbError::Invalid(format!("parent category {p} does not exist")))
}
