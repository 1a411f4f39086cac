//! Every answer the gateway writes itself — successes and refusals of the open API, Save As,
//! the Office mobile endpoints, and every error — as one type: a status, a JSON body and the
//! headers that go beside it (`WWW-Authenticate`, `Retry-After`, WOPI's `X-WOPI-Lock` and
//! `X-WOPI-ValidRelativeTarget`). The HTTP edge writes it as it is.

use super::{ApiError, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// JSON.
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// 200 with this JSON.
    pub fn json(v: &serde_json::Value) -> Self {
        Self {
            status: 200,
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    /// An error with the WOPI headers that go beside it.
    pub fn refused(error: ApiError, headers: Vec<(&'static str, String)>) -> Self {
        headers
            .into_iter()
            .fold(Self::from(error), |r, (k, v)| r.with_header(k, v))
    }

    /// An error of `code` with `message` and no header of its own.
    pub fn refuse(code: ErrorCode, message: &str) -> Self {
        ApiError::new(code, message).into()
    }

    /// The header `name` set to `value` (replacing one of that name).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name, value.into()));
        self
    }
}

impl From<&ApiError> for Reply {
    fn from(e: &ApiError) -> Self {
        let mut headers = Vec::new();
        if let Some(challenge) = e.www_authenticate() {
            headers.push(("WWW-Authenticate", challenge.to_owned()));
        }
        if let Some(s) = e.retry_after {
            headers.push(("Retry-After", s.to_string()));
        }
        Self {
            status: e.status().as_u16(),
            body: e.body(),
            headers,
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Self::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_challenge_and_wait_and_headers_replace_by_name() {
        let r = Reply::from(ApiError::rate_limited(7));
        assert_eq!(r.status, 429);
        assert_eq!(r.headers, vec![("Retry-After", "7".to_owned())]);
        let r = Reply::refuse(ErrorCode::InvalidToken, "expired")
            .with_header("www-authenticate", "Bearer realm=\"x\"");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.headers,
            vec![("www-authenticate", "Bearer realm=\"x\"".to_owned())]
        );
        let r = Reply::refused(
            ApiError::new(ErrorCode::Conflict, "locked"),
            vec![("X-WOPI-Lock", "L1".into())],
        );
        assert_eq!((r.status, r.headers.len()), (409, 1));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "conflict");
    }
}
