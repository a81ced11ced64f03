//! API errors as JSON (`{"error": {"status", "code", "message"}}`), and extractors whose
//! rejections are such errors: malformed ids, unknown fields, bad query strings.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::db::DbError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        let (status, code) = match &e {
            DbError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            DbError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            DbError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            DbError::Internal(_) => {
                tracing::error!(error = %e, "database error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "status": self.status.as_u16(), "code": self.code, "message": self.message }
        });
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body; a malformed body or unknown field is a 400/415/422 saying what was wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    ApiError {
        status,
        code: if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "invalid_body"
        },
        message: r.body_text(),
    }
}

/// A query string; unknown parameters and malformed values are a 400.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request(r.body_text())
}

/// Path parameters; a malformed or non-positive id is a 400.
#[derive(Debug)]
pub struct Ids<T>(pub T);

/// Path parameters that are ids.
pub trait PathIds: DeserializeOwned + Send {
    fn check(&self) -> Result<(), String>;
}

impl PathIds for i64 {
    fn check(&self) -> Result<(), String> {
        crate::domain::check_id("id", *self)
    }
}

impl PathIds for (i64, i64) {
    fn check(&self) -> Result<(), String> {
        crate::domain::check_id("id", self.0)?;
        crate::domain::check_id("variant id", self.1)
    }
}

impl<S: Send + Sync, T: PathIds> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => {
                v.check().map_err(ApiError::bad_request)?;
                Ok(Ids(v))
            }
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    match r {
        PathRejection::FailedToDeserializePathParams(e) => {
            ApiError::bad_request(format!("malformed id in the path: {}", e.body_text()))
        }
        other => ApiError {
            status: other.status(),
            code: "bad_request",
            message: other.body_text(),
        },
    }
}
