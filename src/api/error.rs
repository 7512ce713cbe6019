//! The error body of every failing API call: `{"message": …, "errorCode": …}` with the vendor's
//! error codes. Internal failures are logged with their cause and answered without it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request (its body) did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// The identity authority refused or answered nonsense.
    #[error("{0}")]
    BadGateway(String),
    /// The identity authority did not answer (in time).
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The vendor's `errorCode` for this failure.
    pub fn error_code(&self) -> &'static str {
        error_code_for(self.status())
    }
}

/// The vendor's `errorCode` for an error status: the API's own errors and those it rewrites
/// ([`json_errors`]) share it.
fn error_code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
            "ParameterValidationFailure"
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "ResourceAccessDenied",
        StatusCode::NOT_FOUND => "ResourceNotFound",
        StatusCode::CONFLICT => "OperationConflict",
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => "Timeout",
        _ => "HttpError",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "The server failed to handle the request; the cause is in its log.".to_string()
            }
            other => other.to_string(),
        };
        let body = json!({ "message": message, "errorCode": self.error_code() });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let ApiError::TooManyRequests(_, retry_after) = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let ApiError::Unauthorized(_) = &self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Errors that are not the API's own — axum's extractors (a path segment that is not UTF-8), the
/// whole-request deadline (an empty 504) — come as plain text or empty. Clients of the API expect
/// every error as `{"message", "errorCode"}`, so they are rewritten into it, the text kept as the
/// message. The sandbox's pages and Microsoft-shaped errors are left as they are.
pub async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let sandbox = request.uri().path().starts_with("/sandbox");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if sandbox || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let message = if text.is_empty() {
        match status {
            StatusCode::GATEWAY_TIMEOUT => "The request took longer than the server allows (60 s); try again".to_string(),
            _ => status.canonical_reason().unwrap_or("The request failed").to_string(),
        }
    } else {
        text
    };
    let code = error_code_for(status);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&json!({ "message": message, "errorCode": code })).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
