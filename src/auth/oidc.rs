//! Validates OIDC access tokens with jsonwebtoken: allow-listed asymmetric algorithms, `kid`
//! required, exact `iss`, `aud` containing ours, `exp`/`nbf` with leeway. Valid tokens are cached
//! under their SHA-256 until `exp`, so the hot path does no signature work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};

use super::{AuthError, JwksSource, Principal};
use crate::secret::token_digest;

/// What a token must satisfy.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub max_token_bytes: usize,
    pub cache_entries: u64,
}

impl ValidatorSettings {
    pub fn from_config(c: &crate::config::Oidc) -> Self {
        Self {
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            algorithms: c.algorithms.clone(),
            leeway: c.leeway,
            max_token_bytes: c.max_token_bytes,
            cache_entries: c.token_cache_entries,
        }
    }
}

struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Principal>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Principal>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.expires_at.saturating_sub(now())))
    }
}

pub struct OidcValidator {
    settings: ValidatorSettings,
    validations: HashMap<Algorithm, Validation>,
    jwks: Arc<JwksSource>,
    cache: moka::future::Cache<[u8; 32], Arc<Principal>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl OidcValidator {
    pub fn new(settings: ValidatorSettings, jwks: Arc<JwksSource>) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.set_issuer(&[&settings.issuer]);
                v.set_audience(&[&settings.audience]);
                v.leeway = settings.leeway.as_secs();
                v.validate_nbf = true;
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                (alg, v)
            })
            .collect();
        let cache = moka::future::Cache::builder()
            .max_capacity(settings.cache_entries)
            .expire_after(UntilExp)
            .build();
        Self {
            settings,
            validations,
            jwks,
            cache,
        }
    }

    /// Validates `token`; a cached success is returned without touching the signature.
    pub async fn validate(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let result = self.validate_counted(token).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        crate::metrics::metrics()
            .token_validations
            .with_label_values(&[outcome])
            .inc();
        result
    }

    async fn validate_counted(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > self.settings.max_token_bytes {
            return Err(AuthError::TokenTooLarge);
        }
        let digest = token_digest(token);
        if let Some(p) = self.cache.get(&digest).await
            && p.expires_at + self.settings.leeway.as_secs() >= now()
        {
            crate::metrics::metrics().cache("oidc_token", true);
            return Ok(p);
        }
        crate::metrics::metrics().cache("oidc_token", false);
        let principal = Arc::new(self.validate_uncached(token).await?);
        if principal.expires_at > now() {
            self.cache.insert(digest, principal.clone()).await;
        }
        Ok(principal)
    }

    async fn validate_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        // Compact JWS only: JWE (five parts) and anything else is refused before parsing.
        if token.split('.').count() != 3 {
            return Err(AuthError::Malformed);
        }
        let header = decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
            _ => AuthError::Malformed,
        })?;
        // No JWS extension is supported, so any `crit` entry must fail (RFC 7515 §4.1.11);
        // compression and encryption headers have no place in an access token.
        if header.crit.is_some() || header.zip.is_some() || header.enc.is_some() {
            return Err(AuthError::UnsupportedHeader);
        }
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let kid = header.kid.as_deref().ok_or(AuthError::MissingKid)?;
        let data = self
            .jwks
            .with_key(kid, header.alg, |key| {
                decode::<serde_json::Map<String, serde_json::Value>>(token, key, validation)
                    .map_err(map_error)
            })
            .await?;
        let expires_at = data
            .claims
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or(AuthError::InvalidClaims)?;
        Ok(Principal {
            claims: data.claims,
            expires_at,
        })
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            AuthError::InvalidClaims
        }
        _ => AuthError::Malformed,
    }
}

#[cfg(all(test, feature = "testkit"))]
mod tests;
