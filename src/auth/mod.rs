//! Who is calling: OpenID Connect bearer tokens validated against the IdP's JWKS (issue #3 point 3,
//! security.md §4).

mod jwks;
pub mod logout;
mod oidc;

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

impl From<crate::tokens::carriers::CarrierError> for AuthError {
    fn from(e: crate::tokens::carriers::CarrierError) -> Self {
        use crate::tokens::carriers::CarrierError;
        match e {
            CarrierError::Missing => Self::MissingToken,
            CarrierError::Several => Self::SeveralTokens,
            CarrierError::Malformed => Self::Malformed,
        }
    }
}
