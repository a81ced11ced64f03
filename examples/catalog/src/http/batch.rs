//! `GET /products?ids=1,2,3`: many products in one request, through one `get_many_or_load` (one
//! `MGET` for what L1 lacks, one database call for the misses). Without `ids`, `GET /products` is
//! the listing ([`ListQuery`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::{ApiError, Params};
use crate::domain::{ListQuery, check_id};
use crate::repo::batch::MAX_BATCH;

/// What `GET /products` asks for.
#[derive(Debug)]
pub enum ProductsRequest {
    /// `?ids=..`: these products, each once, in the order first asked.
    Batch(Vec<i64>),
    /// A listing.
    List(ListQuery),
}

impl<S: Send + Sync> FromRequestParts<S> for ProductsRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if !pairs.iter().any(|(name, _)| name == "ids") {
            let Params(list) = Params::<ListQuery>::from_request_parts(parts, state).await?;
            return Ok(ProductsRequest::List(list));
        }
        if let Some((name, _)) = pairs.iter().find(|(name, _)| name != "ids") {
            return Err(ApiError::bad_request(format!(
                "`ids` takes no other parameter (got `{name}`)"
            )));
        }
        if pairs.len() > 1 {
            return Err(ApiError::bad_request("`ids` given more than once"));
        }
        parse_ids(&pairs[0].1).map(ProductsRequest::Batch)
    }
}

/// `1,2,3`: positive ids, at most [`MAX_BATCH`] distinct, duplicates dropped.
fn parse_ids(text: &str) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let id: i64 = part
            .parse()
            .map_err(|_| ApiError::bad_request(format!("`ids`: `{part}` is not an id")))?;
        check_id("id", id).map_err(ApiError::bad_request)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > MAX_BATCH {
            return Err(ApiError::bad_request(format!(
                "`ids` holds at most {MAX_BATCH} ids"
            )));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_dedupe_and_refuse_what_is_not_an_id() {
        assert_eq!(parse_ids("3,1, 3,2").expect("ids"), [3, 1, 2]);
        assert!(parse_ids("").is_err());
        assert!(parse_ids("1,,2").is_err());
        assert!(parse_ids("1,x").is_err());
        assert!(parse_ids("0").is_err());
        let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        assert_eq!(parse_ids(&hundred.join(",")).expect("100 ids").len(), 100);
        let too_many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        assert!(parse_ids(&too_many.join(",")).is_err());
    }
}
