//! Who is calling: OpenID Connect bearer tokens validated against the IdP's JWKS (issue #3 point 3,
//! security.md §4).

mod jwks;
mod oidc;

use jsonwebtoken::Algorithm;

use crate::error::{ApiError, ErrorCode};

pub use jwks::{JwksSource, KeySet};
pub use oidc::{OidcValidator, ValidatorSettings};

/// A validated OIDC identity: the token's claims, trusted.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

impl Principal {
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(|v| v.as_str())
    }
}

/// Why a token was refused. Variant names are the metric outcome labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("more than one bearer token")]
    SeveralTokens,
    #[error("token too large")]
    TokenTooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("token header uses an unsupported feature")]
    UnsupportedHeader,
    #[error("token has no key id")]
    MissingKid,
    #[error("unknown key id")]
    UnknownKid,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("invalid claims")]
    InvalidClaims,
    #[error("identity provider keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// The metric outcome label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing",
            Self::SeveralTokens => "several_tokens",
            Self::TokenTooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedHeader => "unsupported_header",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "bad_issuer",
            Self::WrongAudience => "bad_audience",
            Self::InvalidClaims => "invalid_claims",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::SeveralTokens => ApiError::new(ErrorCode::BadRequest, e.to_string()),
            AuthError::KeysUnavailable => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            _ => ApiError::new(ErrorCode::InvalidToken, e.to_string()),
        }
    }
}

/// Algorithms an operator may allow: asymmetric only. HS* with a public key is the classic
/// confusion attack (security.md J2), and `none` does not parse at all.
pub fn parse_allowed_algorithm(name: &str) -> Result<Algorithm, String> {
    use Algorithm::*;
    let alg: Algorithm = name
        .parse()
        .map_err(|_| format!("unknown algorithm {name:?}"))?;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA => Ok(alg),
        HS256 | HS384 | HS512 => Err(format!(
            "{name} is symmetric; only asymmetric algorithms are allowed for OIDC tokens"
        )),
    }
}

/// The bearer token of an `Authorization` header value; `Bearer` is case-insensitive (RFC 6750).
pub fn bearer_token(value: &[u8]) -> Result<&str, AuthError> {
    let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_unknown_algorithms_are_refused() {
        assert_eq!(parse_allowed_algorithm("RS256"), Ok(Algorithm::RS256));
        assert_eq!(parse_allowed_algorithm("ES256"), Ok(Algorithm::ES256));
        assert!(parse_allowed_algorithm("HS256").is_err());
        assert!(parse_allowed_algorithm("none").is_err());
        assert!(parse_allowed_algorithm("rs256").is_err());
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token(b"bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token(b"Basic abc"), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(b"Bearer "), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(b"Bearer"), Err(AuthError::MissingToken));
    }
}
