//! The one error type of the HTTP edge: every failure leaves the server as the JSON envelope of
//! API.md §1.2 with a stable kebab-case code.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A failure that is answered to the client. The variant decides status and `error` code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing parameter `{0}`")]
    MissingParam(String),
    #[error("{message}")]
    InvalidParam { param: String, message: String },
    #[error("{0}")]
    InvalidJson(String),
    #[error("send either a token or an API key, not both")]
    ConflictingCredentials,
    #[error("no token was sent")]
    TokenMissing,
    #[error("the token is not valid")]
    TokenInvalid,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token has been revoked")]
    TokenRevoked,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the API key is not valid")]
    InvalidApiKey,
    /// Part of the API key triple was sent: the request lacks complete credentials, which is a
    /// 401 (RFC 9110 §15.5.2) like any other failed authentication; `param` names the header.
    #[error("the API key triple lacks header `{0}`")]
    IncompleteApiKey(&'static str),
    #[error("{0}")]
    PermissionDenied(String),
    /// A well-formed value the caller may not use, e.g. a wrong current password; `param` lets a
    /// form put the message on its field.
    #[error("{message}")]
    DeniedParam { param: &'static str, message: String },
    /// The caller's roles lack `bit` on `resource`; the envelope names the resource, so clients
    /// (and tests) need not read the message.
    #[error("this needs permission {bit} on `{resource}`")]
    MissingPermission { resource: &'static str, bit: u8 },
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{resource} `{name}` already exists")]
    AlreadyExists { resource: &'static str, name: String },
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Conflict(String),
    /// A well-formed value that the target's current state refuses, e.g. an API key for a person's
    /// account: no request schema can know the target, so this is 409, not 400.
    #[error("{message}")]
    ConflictParam { param: &'static str, message: String },
    /// Not HTTP/1.1 at all (request line, method, version or a header): answered by the
    /// connection guard (`protocol.rs`) before any route is looked up, then the connection closes.
    #[error("{0}")]
    MalformedRequest(&'static str),
    /// The request head passed actix-http's limits (128 KiB, 96 headers); answered as above.
    #[error("the request head is larger than 128 KiB or has more than 96 headers")]
    HeadTooLarge,
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// Carries the `Allow` header's value: the methods the path does accept.
    #[error("method not allowed; this path accepts {0}")]
    MethodNotAllowed(String),
    #[error("too many attempts; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error("{message}")]
    Maintenance { message: String, retry_after: u64 },
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    /// Anything unexpected. The inner text goes to the log only, never to the client.
    #[error("the server's disk is full: changes cannot be saved until space is freed; reading still works")]
    InsufficientStorage,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidParam { param: param.to_string(), message: message.into() }
    }

    pub fn missing(param: &str) -> Self {
        ApiError::MissingParam(param.to_string())
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    /// The stable code sent as `error`.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingParam(_) => "missing-param",
            InvalidParam { .. } => "invalid-param",
            InvalidJson(_) => "invalid-json",
            ConflictingCredentials => "conflicting-credentials",
            TokenMissing => "token-missing",
            TokenInvalid => "token-invalid",
            TokenExpired => "token-expired",
            TokenRevoked => "token-revoked",
            InvalidCredentials => "invalid-credentials",
            InvalidApiKey | IncompleteApiKey(_) => "invalid-api-key",
            PermissionDenied(_) | DeniedParam { .. } | MissingPermission { .. } => "permission-denied",
            NotFound { .. } => "not-found",
            AlreadyExists { .. } => "already-exists",
            InUse(_) => "in-use",
            Busy(_) => "busy",
            Conflict(_) | ConflictParam { .. } => "conflict",
            MalformedRequest(_) => "malformed-request",
            HeadTooLarge => "request-head-too-large",
            PayloadTooLarge { .. } => "payload-too-large",
            UnsupportedMediaType => "unsupported-media-type",
            MethodNotAllowed(_) => "method-not-allowed",
            RateLimited { .. } => "rate-limited",
            Maintenance { .. } => "maintenance",
            Unavailable { .. } => "unavailable",
            InsufficientStorage => "insufficient-storage",
            Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::Maintenance { retry_after, .. }
            | ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The envelope body, shared with the middleware that rewrites framework errors.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"status": "failed", "error": self.code(), "message": self.to_string()});
        match self {
            ApiError::MissingParam(param) | ApiError::InvalidParam { param, .. } => {
                body["param"] = json!(param);
            }
            ApiError::IncompleteApiKey(param)
            | ApiError::DeniedParam { param, .. }
            | ApiError::ConflictParam { param, .. } => {
                body["param"] = json!(param);
            }
            ApiError::NotFound { resource }
            | ApiError::AlreadyExists { resource, .. }
            | ApiError::MissingPermission { resource, .. } => {
                body["resource"] = json!(resource);
            }
            ApiError::Maintenance { retry_after, .. } => {
                // [compat] the documented body carries retryAfter as a string.
                body["retryAfter"] = json!(retry_after.to_string());
            }
            _ => {}
        }
        body
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingParam(_) | InvalidParam { .. } | InvalidJson(_) | ConflictingCredentials | MalformedRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            TokenMissing | TokenInvalid | TokenExpired | TokenRevoked | InvalidCredentials | InvalidApiKey
            | IncompleteApiKey(_) => StatusCode::UNAUTHORIZED,
            PermissionDenied(_) | DeniedParam { .. } | MissingPermission { .. } => StatusCode::FORBIDDEN,
            NotFound { .. } => StatusCode::NOT_FOUND,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AlreadyExists { .. } | InUse(_) | Busy(_) | Conflict(_) | ConflictParam { .. } => StatusCode::CONFLICT,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Maintenance { .. } | Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            log::error!("internal error: {detail}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        if matches!(self, ApiError::TokenMissing | ApiError::TokenInvalid | ApiError::TokenExpired) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        match err {
            crate::store::StoreError::Busy => {
                ApiError::Unavailable { message: "the database is busy; try again".into(), retry_after: 1 }
            }
            crate::store::StoreError::Full => ApiError::InsufficientStorage,
            crate::store::StoreError::Sqlite(e) if crate::store::StoreError::is_disk_full(&e) => {
                ApiError::InsufficientStorage
            }
            other => ApiError::internal(other),
        }
    }
}

/// Store errors arrive here already converted (see `From<StoreError>` above), a full disk as 507.
impl crate::store::WriteError for ApiError {
    fn is_disk_full(&self) -> bool {
        matches!(self, ApiError::InsufficientStorage)
    }
}

impl From<crate::domain::Refusal> for ApiError {
    fn from(refusal: crate::domain::Refusal) -> Self {
        match refusal {
            crate::domain::Refusal::Invalid { param, message } => ApiError::InvalidParam { param, message },
            crate::domain::Refusal::Missing(param) => ApiError::MissingParam(param),
            damaged @ crate::domain::Refusal::Damaged(_) => ApiError::internal(damaged),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ApiError::internal(err)
    }
}

/// Result of handlers and services at the HTTP edge.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_store_or_a_full_reader_queue_answers_503_with_retry_after() {
        // `Readers::run` turns a full queue into `StoreError::Busy`.
        let response = ApiError::from(crate::store::StoreError::Busy).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn a_method_not_allowed_names_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed("GET, HEAD".into()).error_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET, HEAD");
    }
}
