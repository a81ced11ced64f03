//! API errors as JSON (`{"error": {"status", "code", "message"}}`), extractors whose
//! rejections are such errors (malformed ids, unknown fields, bad query strings, invalid UTF-8),
//! and [`json_errors`], the middleware that gives every other error the service answers (405,
//! 413, a timeout, a panic) the same shape.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::db::DbError;
use crate::domain::InputError;

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

    /// Well-formed input the catalog refuses (422).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: message.into(),
        }
    }

    /// An error of the given status, with the code its status implies.
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code_of(status),
            message: message.into(),
        }
    }
}

/// The `code` of an error answered with `status` (by the service's own layers).
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        match e {
            InputError::Malformed(m) => ApiError::bad_request(m),
            InputError::Unacceptable(m) => ApiError::unprocessable(m),
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
        if let Some(query) = parts.uri.query() {
            check_query_utf8(query)?;
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request(r.body_text())
}

/// Refuses a query string whose names or values are not UTF-8 once percent-decoded (the
/// `application/x-www-form-urlencoded` parser would silently turn them into U+FFFD, so that
/// `q=%FF` and `q=%EF%BF%BD` would be one search).
fn check_query_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let decoded = percent_encoding::percent_decode_str(pair);
        if decoded.decode_utf8().is_err() {
            let name = pair.split('=').next().unwrap_or_default();
            let shown: String = name.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "query parameter `{shown}` is not valid UTF-8 once percent-decoded"
            )));
        }
    }
    Ok(())
}

/// Path parameters of any type; a malformed one (not UTF-8 once percent-decoded, not of the
/// type) is a 400.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

/// Path parameters that are ids; a malformed or non-positive id is a 400.
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
        let PathParams(v) = PathParams::<T>::from_request_parts(parts, state).await?;
        v.check().map_err(ApiError::bad_request)?;
        Ok(Ids(v))
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    match r {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                ApiError::bad_request(format!("path parameter `{key}` is not valid UTF-8"))
            }
            _ => ApiError::bad_request(format!("malformed id in the path: {}", e.body_text())),
        },
        other => ApiError {
            status: other.status(),
            code: "bad_request",
            message: other.body_text(),
        },
    }
}

/// Longest body of a non-JSON error kept as the message when [`json_errors`] rewrites it.
const MAX_ERROR_TEXT: usize = 1024;

/// Middleware: an error response (4xx, 5xx) that is not already JSON (axum's 405, a 413 of the
/// body limit, a timeout, a caught panic, any rejection a handler let through) is answered as
/// the JSON contract, with the same status and its text (or the status's reason) as message.
pub async fn json_errors(req: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten = ApiError::from_status(status, message).into_response();
    // Keep what the layer said besides its body (`Allow` of a 405, `Connection: close`).
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten
}
