//! Categories on PostgreSQL: the queries of `repo/categories.rs`.

use tokio_postgres::GenericClient;

use super::{
    CATEGORY_COLUMNS, ancestors, categories, category_exists, category_row, next_id, subtree,
};
use crate::db::{DbError, PgDb};
use crate::domain::{Category, CategoryInput, MAX_CATEGORY_DEPTH};
use crate::repo::categories::{CategoryChange, check_depth, parent_depth_error};

/// Every category, ordered by `order_by`.
pub async fn all(db: &PgDb, order_by: &str) -> Result<Vec<Category>, DbError> {
    let c = db.client().await?;
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {CATEGORY_COLUMNS} FROM categories c ORDER BY {order_by}"
        ))
        .await?;
    categories(&c.query(&stmt, &[]).await?)
}

pub async fn category(db: &PgDb, id: i64) -> Result<Option<Category>, DbError> {
    let c = db.client().await?;
    let row = c
        .query_opt(
            &format!("SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.id = $1"),
            &[&id],
        )
        .await?;
    row.as_ref().map(category_row).transpose()
}

pub async fn children(db: &PgDb, id: i64) -> Result<Option<Vec<Category>>, DbError> {
    let c = db.client().await?;
    if !category_exists(&**c, id).await? {
        return Ok(None);
    }
    let rows = c
        .query(
            &format!(
                "SELECT {CATEGORY_COLUMNS} FROM categories c WHERE c.parent_id = $1 ORDER BY c.name"
            ),
            &[&id],
        )
        .await?;
    Ok(Some(categories(&rows)?))
}

pub async fn largest_categories(db: &PgDb, limit: usize) -> Result<Vec<i64>, DbError> {
    let c = db.client().await?;
    let rows = c
        .query(
            "WITH RECURSIVE up(leaf, id, level) AS (
                SELECT id, id, 0::BIGINT FROM categories
                UNION ALL SELECT up.leaf, c.parent_id, up.level + 1 FROM up JOIN categories c ON c.id = up.id
                WHERE c.parent_id IS NOT NULL AND up.level < $2)
             SELECT up.id, COUNT(*) AS n FROM products p JOIN up ON up.leaf = p.category_id
             GROUP BY up.id ORDER BY n DESC, up.id LIMIT $1",
            &[&(limit as i64), &MAX_CATEGORY_DEPTH],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn create_category(
    db: PgDb,
    id: Option<i64>,
    input: CategoryInput,
) -> Result<CategoryChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    if let Some(id) = id
        && category_exists(&*tx, id).await?
    {
        return Err(DbError::Conflict(format!("category {id} already exists")));
    }
    let depth = parent_depth(&*tx, input.parent_id)
        .await?
        .map_or(0, |d| d + 1);
    check_depth(depth, 0)?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO categories (id, parent_id, name, slug, depth)
                 VALUES (COALESCE($1, {}), $2, $3, $4, $5)
                 RETURNING id, parent_id, name, slug, depth",
                next_id("categories")
            ),
            &[
                &id,
                &input.parent_id,
                &input.name,
                &input.slug_or_default(),
                &depth,
            ],
        )
        .await?;
    let category = category_row(&row)?;
    tx.commit().await?;
    Ok(CategoryChange {
        created_or_deleted: Some(category.id),
        category: Some(category),
        moved: Vec::new(),
    })
}

pub async fn update_category(
    db: PgDb,
    id: i64,
    input: CategoryInput,
) -> Result<CategoryChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    let old_parent: Option<i64> = tx
        .query_opt("SELECT parent_id FROM categories WHERE id = $1", &[&id])
        .await?
        .ok_or_else(|| DbError::NotFound(format!("category {id} not found")))?
        .try_get(0)?;
    let mut moved = Vec::new();
    if old_parent != input.parent_id {
        if let Some(p) = input.parent_id
            && subtree(&*tx, id).await?.contains(&p)
        {
            return Err(DbError::Invalid(format!(
                "parent_id {p} is category {id} or one of its descendants"
            )));
        }
        let depth = parent_depth(&*tx, input.parent_id)
            .await?
            .map_or(0, |d| d + 1);
        let levels = subtree_levels(&*tx, id).await?;
        let height = levels.iter().map(|&(_, level)| level).max().unwrap_or(0);
        check_depth(depth, height)?;
        for (c, level) in levels {
            tx.execute(
                "UPDATE categories SET depth = $1 WHERE id = $2",
                &[&(depth + level), &c],
            )
            .await?;
        }
        if let Some(p) = old_parent {
            moved.extend(ancestors(&*tx, p).await?);
        }
        if let Some(p) = input.parent_id {
            moved.extend(ancestors(&*tx, p).await?);
        }
    }
    let row = tx
        .query_one(
            "UPDATE categories SET name = $1, slug = $2, parent_id = $3 WHERE id = $4
             RETURNING id, parent_id, name, slug, depth",
            &[&input.name, &input.slug_or_default(), &input.parent_id, &id],
        )
        .await?;
    let category = category_row(&row)?;
    tx.commit().await?;
    Ok(CategoryChange {
        category: Some(category),
        moved,
        created_or_deleted: None,
    })
}

pub async fn delete_category(db: PgDb, id: i64) -> Result<CategoryChange, DbError> {
    let mut client = db.client().await?;
    let tx = PgDb::write_transaction(&mut client).await?;
    if !category_exists(&*tx, id).await? {
        return Err(DbError::NotFound(format!("category {id} not found")));
    }
    let children: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM categories WHERE parent_id = $1",
            &[&id],
        )
        .await?
        .try_get(0)?;
    let products: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM products WHERE category_id = $1",
            &[&id],
        )
        .await?
        .try_get(0)?;
    if children > 0 || products > 0 {
        return Err(DbError::Conflict(format!(
            "category {id} still has {children} children and {products} products"
        )));
    }
    tx.execute("DELETE FROM categories WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(CategoryChange {
        category: None,
        moved: Vec::new(),
        created_or_deleted: Some(id),
    })
}

/// As `repo/categories.rs`'s `parent_depth`.
async fn parent_depth<C: GenericClient + Sync>(
    c: &C,
    parent: Option<i64>,
) -> Result<Option<i64>, DbError> {
    let Some(p) = parent else {
        return Ok(None);
    };
    if !category_exists(c, p).await? {
        return Err(DbError::Invalid(format!(
            "parent category {p} does not exist"
        )));
    }
    let depth: Option<i64> = c
        .query_opt(
            "WITH RECURSIVE up(id, parent_id, level) AS (
                SELECT id, parent_id, 0::BIGINT FROM categories WHERE id = $1
                UNION ALL SELECT c.id, c.parent_id, up.level + 1 FROM categories c
                JOIN up ON c.id = up.parent_id WHERE up.level < $2)
             SELECT level FROM up WHERE parent_id IS NULL",
            &[&p, &MAX_CATEGORY_DEPTH],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    depth.map(Some).ok_or_else(|| parent_depth_error(p))
}

/// As `repo/categories.rs`'s `subtree_levels`.
async fn subtree_levels<C: GenericClient + Sync>(
    c: &C,
    id: i64,
) -> Result<Vec<(i64, i64)>, DbError> {
    let rows = c
        .query(
            "WITH RECURSIVE sub(id, level) AS (
                SELECT $1::BIGINT, 0::BIGINT
                UNION SELECT c.id, s.level + 1 FROM categories c JOIN sub s ON c.parent_id = s.id
                WHERE s.level <= $2)
             SELECT id, MIN(level) FROM sub GROUP BY id",
            &[&id, &MAX_CATEGORY_DEPTH],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Whether category `id` exists.
pub async fn exists(db: &PgDb, id: i64) -> Result<bool, DbError> {
    let c = db.client().await?;
    category_exists(&**c, id).await
}
