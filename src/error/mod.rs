//! Every failure a client can see, mapped once to status, code and JSON body (issue #3 point 8).
//!
//! Module errors convert into [`ApiError`] in [`from`], the one table; messages never contain
//! tokens or secrets.

mod from;
mod reply;

pub use reply::Reply;

use http::StatusCode;
use serde::Serialize;

/// Closed set of error codes; also the label set for error metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidToken,
    /// The token's login, user, session or file was revoked by an operator or a logout (401:
    /// what office apps treat as an expired token).
    Revoked,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    /// The name is taken, or the target is locked (WOPI 409).
    Conflict,
    /// The request target is longer than `server.max_uri_bytes`.
    UriTooLong,
    /// The request head is over `server.max_header_bytes` or `max_header_count`.
    HeadersTooLarge,
    /// The client paused too long or sent its body too slowly.
    RequestTimeout,
    UnsupportedExtension,
    UpstreamError,
    Unavailable,
    /// Every wopiserver instance that could serve the request is at its concurrency cap.
    Busy,
    /// Over a configured rate limit (`[rate_limits]`).
    RateLimited,
    UpstreamTimeout,
    /// WOPI proof-key check failed: 500 as the WOPI spec requires (wopi.md §10.3).
    ProofInvalid,
    /// A WOPI operation wopigate does not implement (wopi.md §1.2).
    NotImplemented,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::InvalidToken | Self::Revoked => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedExtension => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::Unavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ProofInvalid | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidToken => "invalid_token",
            Self::Revoked => "revoked",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Conflict => "conflict",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UnsupportedExtension => "unsupported_extension",
            Self::UpstreamError => "upstream_error",
            Self::Unavailable => "unavailable",
            Self::Busy => "busy",
            Self::RateLimited => "rate_limited",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::ProofInvalid => "proof_invalid",
            Self::NotImplemented => "not_implemented",
            Self::Internal => "internal",
        }
    }
}

/// A client-visible error: `{"code": "...", "message": "..."}` with the code's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// `Retry-After` seconds: when a client over a limit may try again.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401 `revoked`.
    pub fn revoked() -> Self {
        Self::new(ErrorCode::Revoked, "access revoked")
    }

    /// 503: the wopiserver instances are at their concurrency cap; worth retrying shortly.
    pub fn busy() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(ErrorCode::Busy, "the wopiserver is busy, retry shortly")
        }
    }

    /// 429 with the seconds until the limit's window ends.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(ErrorCode::RateLimited, "too many requests")
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            code: ErrorCode,
            message: &'a str,
        }
        serde_json::to_vec(&Body {
            code: self.code,
            message: &self.message,
        })
        .unwrap_or_else(|_| br#"{"code":"internal","message":"error"}"#.to_vec())
    }

    /// 404 for a path the gateway serves nothing at (on any listener).
    pub fn no_such_endpoint() -> Self {
        Self::new(ErrorCode::NotFound, "no such endpoint")
    }

    /// RFC 6750 challenge for 401 answers.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        matches!(self.code, ErrorCode::InvalidToken | ErrorCode::Revoked)
            .then_some(r#"Bearer error="invalid_token""#)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json_with_code_and_message() {
        let e = ApiError::new(ErrorCode::UnsupportedExtension, "no app opens .xyz");
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["code"], "unsupported_extension");
        assert_eq!(v["message"], "no app opens .xyz");
        assert!(e.www_authenticate().is_none());
        let e = ApiError::new(ErrorCode::InvalidToken, "expired");
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert!(e.www_authenticate().unwrap().contains("invalid_token"));
    }
}
