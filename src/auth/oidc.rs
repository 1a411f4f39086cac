//! Validates OIDC access tokens with jsonwebtoken: allow-listed asymmetric algorithms, `kid`
//! required, exact `iss`, `aud` containing ours, `exp`/`nbf` with leeway. Valid tokens are cached
//! under their SHA-256 until `exp`, so the hot path does no signature work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};

use super::{AuthError, JwksSource, Principal};
use crate::secret::token_digest;
use crate::tokens::now;

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

/// A validated token as cached: the identity and the key that signed it, so a token outlives
/// neither its `exp` nor its key's removal from the IdP's JWKS.
#[derive(Clone)]
struct Validated {
    principal: Arc<Principal>,
    kid: Arc<str>,
}

impl crate::tokens::Expires for Validated {
    fn expires_at(&self) -> u64 {
        self.principal.expires_at
    }
}

pub struct OidcValidator {
    settings: ValidatorSettings,
    validations: HashMap<Algorithm, Validation>,
    jwks: Arc<JwksSource>,
    cache: moka::future::Cache<[u8; 32], Validated>,
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
            .expire_after(crate::tokens::AtExpiry)
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
        if let Some(v) = self.cache.get(&digest).await
            && v.principal.expires_at + self.settings.leeway.as_secs() >= now()
            && self.jwks.publishes(&v.kid)
        {
            crate::metrics::metrics().cache("oidc_token", true);
            return Ok(v.principal);
        }
        crate::metrics::metrics().cache("oidc_token", false);
        let (principal, kid) = self.validate_uncached(token).await?;
        let principal = Arc::new(principal);
        if principal.expires_at > now() {
            let entry = Validated {
                principal: principal.clone(),
                kid: kid.into(),
            };
            self.cache.insert(digest, entry).await;
        }
        Ok(principal)
    }

    /// The identity in `token` and the `kid` that signed it.
    async fn validate_uncached(&self, token: &str) -> Result<(Principal, String), AuthError> {
        let (data, kid) = verified(token, &self.validations, &self.jwks).await?;
        let time = |name: &str| {
            data.claims
                .get(name)
                .map(|v| v.as_u64().filter(|t| *t <= MAX_SAFE_TIME))
        };
        // Times must be integers a JSON parser reads exactly (security.md J18).
        let expires_at = time("exp").flatten().ok_or(AuthError::InvalidClaims)?;
        let now = now();
        match time("iat") {
            Some(None) => return Err(AuthError::InvalidClaims),
            // Issued in the future: a clock or forgery problem, not a usable token (J17).
            Some(Some(iat)) if iat > now + self.settings.leeway.as_secs() => {
                return Err(AuthError::NotYetValid);
            }
            _ => {}
        }
        if matches!(time("nbf"), Some(None)) {
            return Err(AuthError::InvalidClaims);
        }
        Ok((
            Principal {
                claims: data.claims,
                expires_at,
            },
            kid,
        ))
    }
}

/// A compact JWS verified with the IdP's key its `kid` names, under the validation of its
/// algorithm (allow-listed): its claims and that `kid`.
pub(super) async fn verified(
    token: &str,
    validations: &HashMap<Algorithm, Validation>,
    jwks: &JwksSource,
) -> Result<(jsonwebtoken::TokenData<Claims>, String), AuthError> {
    let header = checked_header(token)?;
    let validation = validations
        .get(&header.alg)
        .ok_or(AuthError::AlgorithmNotAllowed)?;
    let kid = header.kid.ok_or(AuthError::MissingKid)?;
    let data = jwks
        .with_key(&kid, header.alg, |key| {
            decode::<Claims>(token, key, validation).map_err(map_error)
        })
        .await?;
    Ok((data, kid))
}

/// A token's claims as read: a JSON object.
pub(super) type Claims = serde_json::Map<String, serde_json::Value>;

/// 2^53: larger JSON integers are not read exactly by every parser.
pub(super) const MAX_SAFE_TIME: u64 = 1 << 53;

/// The header of a compact JWS the gateway is willing to verify: three parts, no JWS
/// extension, compression, encryption or nesting, and a payload without duplicate members.
fn checked_header(token: &str) -> Result<jsonwebtoken::Header, AuthError> {
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
    // A nested JWT (`cty: JWT`) is not an access token (security.md J21).
    let nested = header
        .cty
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("JWT"));
    if header.crit.is_some() || header.zip.is_some() || header.enc.is_some() || nested {
        return Err(AuthError::UnsupportedHeader);
    }
    // Two readings of one token are one too many: duplicate claim names are refused rather
    // than resolved last-wins (security.md J22).
    let payload = token.split('.').nth(1).unwrap_or_default();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .map_err(|_| AuthError::Malformed)?;
    if has_duplicate_keys(&payload) {
        return Err(AuthError::Malformed);
    }
    Ok(header)
}

/// Whether a JSON object repeats a member name at its top level.
fn has_duplicate_keys(json: &[u8]) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut duplicate = false;
            while let Some(key) = map.next_key::<String>()? {
                duplicate |= !seen.insert(key);
                map.next_value::<IgnoredAny>()?;
            }
            Ok(duplicate)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    // Not an object, or not JSON: the decoder refuses it anyway.
    de.deserialize_map(Keys).unwrap_or(false)
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
