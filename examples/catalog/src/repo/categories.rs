//! Categories: the tree, one category, children; writes.

use std::collections::{HashMap, VecDeque};

use cache_core::cached;
use rusqlite::{OptionalExtension, params};

use super::{
    CATEGORY_COLUMNS, Invalidates, Repo, ancestors, category_exists, category_row, postgres,
    subtree, tags,
};
use crate::db::{Db, DbError};
use crate::domain::{Category, CategoryInput, CategoryNode, MAX_CATEGORY_DEPTH};

/// What a category write changed, for invalidation.
pub(super) struct CategoryChange {
    pub(super) category: Option<Category>,
    /// Categories whose subtree gained or lost products (with their ancestors).
    pub(super) moved: Vec<i64>,
    /// Categories created or deleted: their listings, filters and attributes may be cached as
    /// "not found" (or, once deleted, as found).
    pub(super) created_or_deleted: Option<i64>,
}

impl Repo {
    /// Every category, by id.
    #[cached(key = "cat:all", ttl = 1800, tags = ["categories"])]
    pub async fn categories(&self) -> Result<Vec<Category>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::categories::all(db, "c.id").await,
        };
        db.read(|c| {
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

    /// The category tree: roots with their children, ordered by name, down to
    /// [`MAX_CATEGORY_DEPTH`] (deeper categories, and cycles, exist only in a database edited by
    /// hand: they are left out, and logged).
    #[cached(key = "cat:tree", ttl = 1800, tags = ["categories"])]
    pub async fn category_tree(&self) -> Result<Vec<CategoryNode>, DbError> {
        let all = match &self.db {
            Db::Postgres(db) => postgres::categories::all(db, "c.name").await?,
            Db::Sqlite(db) => {
                db.read(|c| {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {CATEGORY_COLUMNS} FROM categories c ORDER BY c.name"
                    ))?;
                    let rows: Vec<Category> = stmt
                        .query_map([], category_row)?
                        .collect::<Result<_, _>>()?;
                    Ok(rows)
                })
                .await?
            }
        };
        let (tree, unreachable) = build_tree(&all);
        if unreachable > 0 {
            tracing::warn!(
                unreachable,
                max_depth = MAX_CATEGORY_DEPTH,
                "category tree: categories deeper than the maximum or in a parent_id cycle left out \
                 (a database edited by hand)"
            );
        }
        Ok(tree)
    }

    /// One category.
    #[cached(key = "cat:<id>", ttl = 3600, none_ttl = 60, tags = ["categories"])]
    pub async fn category(&self, id: i64) -> Result<Option<Category>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::categories::category(db, id).await,
        };
        db.read(move |c| {
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
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::categories::children(db, id).await,
        };
        db.read(move |c| {
            if !category_exists(c, id)? {
                return Ok(None);
            }
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.parent_id = ?1 ORDER BY c.name"
            ))?;
            let rows = stmt
                .query_map([id], category_row)?
                .collect::<Result<_, _>>()?;
            Ok(Some(rows))
        })
        .await
    }

    /// The largest categories by number of products (in their subtree), largest first: what
    /// warmup preloads filters and listings of.
    pub async fn largest_categories(&self, limit: usize) -> Result<Vec<i64>, DbError> {
        let db = match &self.db {
            Db::Sqlite(db) => db,
            Db::Postgres(db) => return postgres::categories::largest_categories(db, limit).await,
        };
        db
            .read(move |c| {
                // Every (category, ancestor) pair, walked at most MAX_CATEGORY_DEPTH levels up
                // (bounded: a chain of n categories edited in by hand would otherwise make n²/2
                // pairs, and a cycle never ends).
                let mut stmt = c.prepare_cached(
                    "WITH RECURSIVE up(leaf, id, level) AS (
                        SELECT id, id, 0 FROM categories
                        UNION ALL SELECT up.leaf, c.parent_id, up.level + 1 FROM up JOIN categories c ON c.id = up.id
                        WHERE c.parent_id IS NOT NULL AND up.level < ?2)
                     SELECT up.id, COUNT(*) AS n FROM products p JOIN up ON up.leaf = p.category_id
                     GROUP BY up.id ORDER BY n DESC, up.id LIMIT ?1",
                )?;
                let ids = stmt
                    .query_map(params![limit as i64, MAX_CATEGORY_DEPTH], |r| r.get(0))?
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
            .write(match &self.db {
                Db::Postgres(db) => Box::pin(postgres::categories::create_category(db.clone(), id, input)),
                Db::Sqlite(db) => db.transaction(move |tx| {
                if let Some(id) = id
                    && category_exists(tx, id)?
                {
                    return Err(DbError::Conflict(format!("category {id} already exists")));
                }
                let depth = parent_depth(tx, input.parent_id)?.map_or(0, |d| d + 1);
                check_depth(depth, 0)?;
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
            })})
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
            .write(match &self.db {
                Db::Postgres(db) => {
                    Box::pin(postgres::categories::update_category(db.clone(), id, input))
                }
                Db::Sqlite(db) => db.transaction(move |tx| {
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
                        let levels = subtree_levels(tx, id)?;
                        let height = levels.iter().map(|&(_, level)| level).max().unwrap_or(0);
                        check_depth(depth, height)?;
                        // Each category of the moved subtree gets its depth from the walk (which
                        // also mends a depth a hand edit got wrong).
                        for (c, level) in levels {
                            tx.execute(
                                "UPDATE categories SET depth = ?1 WHERE id = ?2",
                                params![depth + level, c],
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
                }),
            })
            .await?;
        change
            .category
            .ok_or_else(|| DbError::Internal("category vanished".to_owned()))
    }

    /// Deletes a category that has neither children nor products.
    /// Runs to completion even if the caller's future is dropped (see `Repo::write`).
    pub async fn delete_category(&self, id: i64) -> Result<(), DbError> {
        self.write(match &self.db {
            Db::Postgres(db) => Box::pin(postgres::categories::delete_category(db.clone(), id)),
            Db::Sqlite(db) => db.transaction(move |tx| {
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
            }),
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

/// The depth of the parent (`None` for no parent), found by walking up from it to its root (at
/// most [`MAX_CATEGORY_DEPTH`] steps, so the stored `depth` of a database edited by hand is not
/// trusted); an unknown parent, or one with no root within the bound (deeper, or in a cycle), is
/// invalid input.
fn parent_depth(tx: &rusqlite::Connection, parent: Option<i64>) -> Result<Option<i64>, DbError> {
    let Some(p) = parent else {
        return Ok(None);
    };
    if !category_exists(tx, p)? {
        return Err(DbError::Invalid(format!(
            "parent category {p} does not exist"
        )));
    }
    let depth: Option<i64> = tx
        .query_row(
            "WITH RECURSIVE up(id, parent_id, level) AS (
                SELECT id, parent_id, 0 FROM categories WHERE id = ?1
                UNION ALL SELECT c.id, c.parent_id, up.level + 1 FROM categories c
                JOIN up ON c.id = up.parent_id WHERE up.level < ?2)
             SELECT level FROM up WHERE parent_id IS NULL",
            params![p, MAX_CATEGORY_DEPTH],
            |r| r.get(0),
        )
        .optional()?;
    depth.map(Some).ok_or_else(|| parent_depth_error(p))
}

/// The error of a parent with no root within [`MAX_CATEGORY_DEPTH`] levels.
pub(super) fn parent_depth_error(p: i64) -> DbError {
    DbError::Invalid(format!(
        "parent category {p} is deeper than {MAX_CATEGORY_DEPTH} levels, or its ancestors form a \
         cycle"
    ))
}

/// Category `id` and its descendants with their level below it (0 for `id`), walked at most
/// [`MAX_CATEGORY_DEPTH`] + 1 levels down: enough to know the subtree is too deep to move.
fn subtree_levels(tx: &rusqlite::Connection, id: i64) -> Result<Vec<(i64, i64)>, DbError> {
    let mut stmt = tx.prepare_cached(
        "WITH RECURSIVE sub(id, level) AS (
            SELECT ?1, 0
            UNION SELECT c.id, s.level + 1 FROM categories c JOIN sub s ON c.parent_id = s.id
            WHERE s.level <= ?2)
         SELECT id, MIN(level) FROM sub GROUP BY id",
    )?;
    let rows = stmt
        .query_map(params![id, MAX_CATEGORY_DEPTH], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Refuses a category at `depth` whose subtree goes `height` levels below it, when its deepest
/// category would pass [`MAX_CATEGORY_DEPTH`].
pub(super) fn check_depth(depth: i64, height: i64) -> Result<(), DbError> {
    if depth + height > MAX_CATEGORY_DEPTH {
        return Err(DbError::Invalid(if height == 0 {
            format!(
                "the category would be at depth {depth}: categories nest at most \
                 {MAX_CATEGORY_DEPTH} levels below a root"
            )
        } else {
            format!(
                "the category's subtree would reach depth {}: categories nest at most \
                 {MAX_CATEGORY_DEPTH} levels below a root",
                depth + height
            )
        }));
    }
    Ok(())
}

/// The forest of `all` (ordered by name), built from its roots breadth first without recursion,
/// down to depth [`MAX_CATEGORY_DEPTH`]; also the number of categories left out (deeper, or in a
/// `parent_id` cycle, which no root reaches). Iterative and bounded, so that no shape of the
/// table can overflow the stack here, nor later when the tree is serialized or dropped.
fn build_tree(all: &[Category]) -> (Vec<CategoryNode>, usize) {
    let mut by_parent: HashMap<Option<i64>, Vec<usize>> = HashMap::new();
    for (i, c) in all.iter().enumerate() {
        by_parent.entry(c.parent_id).or_default().push(i);
    }
    // Breadth-first order: (category index, slot of its parent in `order`).
    let mut order: Vec<(usize, Option<usize>)> = Vec::new();
    let mut queue: VecDeque<(usize, Option<usize>, i64)> = by_parent
        .get(&None)
        .into_iter()
        .flatten()
        .map(|&i| (i, None, 0))
        .collect();
    while let Some((i, parent, depth)) = queue.pop_front() {
        let slot = order.len();
        order.push((i, parent));
        if depth < MAX_CATEGORY_DEPTH {
            for &child in by_parent.get(&Some(all[i].id)).into_iter().flatten() {
                queue.push_back((child, Some(slot), depth + 1));
            }
        }
    }
    // Bottom-up: a node's children all come after it in `order`, so they are complete when it
    // is reached; taken in reverse, so each list is reversed back into name order.
    let mut children: Vec<Vec<CategoryNode>> = Vec::new();
    children.resize_with(order.len(), Vec::new);
    let mut roots = Vec::new();
    for slot in (0..order.len()).rev() {
        let (i, parent) = order[slot];
        let mut kids = std::mem::take(&mut children[slot]);
        kids.reverse();
        let c = &all[i];
        let node = CategoryNode {
            id: c.id,
            name: c.name.clone(),
            slug: c.slug.clone(),
            children: kids,
        };
        match parent {
            Some(p) => children[p].push(node),
            None => roots.push(node),
        }
    }
    roots.reverse();
    (roots, all.len() - order.len())
}
