//! The IdP's signing keys: discovery → `jwks_uri` → key set, kept in memory. Refetched on an
//! unknown `kid` (single-flight and rate-limited through a moka entry that lives for the minimum
//! refetch interval), periodically in the background, and never dropped when the IdP is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use url::Url;

use super::AuthError;
use crate::http_client::{FetchError, get_bounded};

const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    Ec,
    Ed,
}

fn family_of(alg: Algorithm) -> Option<KeyFamily> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(KeyFamily::Rsa),
        ES256 | ES384 => Some(KeyFamily::Ec),
        EdDSA => Some(KeyFamily::Ed),
        HS256 | HS384 | HS512 => None,
    }
}

struct KeyEntry {
    key: DecodingKey,
    family: KeyFamily,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<Algorithm>,
}

/// One published key set, indexed by `kid`. Symmetric (`oct`) keys are never loaded.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, KeyEntry>,
    /// The IdP's OAuth2 endpoints from the same discovery document (for the bootstrapper).
    pub endpoints: OAuthEndpoints,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthEndpoints {
    pub authorization: Option<String>,
    pub token: Option<String>,
}

impl KeySet {
    pub fn from_jwks_json(bytes: &[u8]) -> Result<Self, FetchError> {
        let set: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| FetchError::Invalid(format!("JWKS: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
                AlgorithmParameters::OctetKey(_) => continue,
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, KeyEntry { key, family, alg });
            }
        }
        Ok(Self {
            keys,
            endpoints: OAuthEndpoints::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for `kid`, if its type fits `alg` (security.md J4: key type bound to algorithm).
    pub(super) fn key_for(
        &self,
        kid: &str,
        alg: Algorithm,
    ) -> Result<Option<&DecodingKey>, AuthError> {
        let Some(entry) = self.keys.get(kid) else {
            return Ok(None);
        };
        if family_of(alg) != Some(entry.family) || entry.alg.is_some_and(|a| a != alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        Ok(Some(&entry.key))
    }
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// Where keys come from and the last good set.
pub struct JwksSource {
    http: Option<reqwest::Client>,
    discovery_url: Option<Url>,
    issuer: String,
    min_refetch: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    fetches: moka::future::Cache<(), Arc<KeySet>>,
    last_failure: Mutex<Option<Instant>>,
}

impl JwksSource {
    pub fn new(
        http: reqwest::Client,
        discovery_url: Url,
        issuer: String,
        min_refetch: Duration,
    ) -> Self {
        Self {
            http: Some(http),
            discovery_url: Some(discovery_url),
            issuer,
            min_refetch,
            current: RwLock::new(None),
            fetches: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(min_refetch.max(Duration::from_millis(1)))
                .build(),
            last_failure: Mutex::new(None),
        }
    }

    /// A fixed key set that is never refetched (benches, unit tests).
    pub fn fixed(keys: KeySet) -> Self {
        Self {
            http: None,
            discovery_url: None,
            issuer: String::new(),
            min_refetch: Duration::from_secs(3600),
            current: RwLock::new(Some(Arc::new(keys))),
            fetches: moka::future::Cache::new(1),
            last_failure: Mutex::new(None),
        }
    }

    /// Whether the last good key set still holds `kid` (a retired key's tokens stop validating
    /// even where they were cached).
    pub fn publishes(&self, kid: &str) -> bool {
        self.current
            .read()
            .is_ok_and(|g| g.as_ref().is_some_and(|set| set.keys.contains_key(kid)))
    }

    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    fn store(&self, set: &Arc<KeySet>) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(set.clone());
        }
    }

    /// Fetches the key set now (start-up and the periodic refresh). A failure keeps the last good
    /// set.
    pub async fn refresh(&self) -> Result<Arc<KeySet>, FetchError> {
        let (Some(http), Some(discovery_url)) = (&self.http, &self.discovery_url) else {
            return self.current().ok_or(FetchError::Connect);
        };
        match fetch(http, discovery_url, &self.issuer).await {
            Ok(set) => {
                self.store(&set);
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good key set");
                Err(e)
            }
        }
    }

    /// Refetch caused by an unknown `kid`: concurrent callers share one fetch, and at most one
    /// fetch (or failed attempt) happens per minimum refetch interval, so a flood of made-up kids
    /// cannot turn the gateway against the IdP (security.md J9).
    async fn refetch_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let (Some(http), Some(discovery_url)) = (&self.http, &self.discovery_url) else {
            return self.current();
        };
        let recently_failed = self
            .last_failure
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|t| t.elapsed() < self.min_refetch);
        if recently_failed {
            return self.current();
        }
        match self
            .fetches
            .try_get_with((), fetch(http, discovery_url, &self.issuer))
            .await
        {
            Ok(set) => {
                self.store(&set);
                Some(set)
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refetch for an unknown kid failed; keeping the last good key set");
                if let Ok(mut g) = self.last_failure.lock() {
                    *g = Some(Instant::now());
                }
                self.current()
            }
        }
    }

    /// Runs `f` with the key for `kid`, refreshing once if the `kid` is not known yet.
    pub(super) async fn with_key<T>(
        &self,
        kid: &str,
        alg: Algorithm,
        f: impl FnOnce(&DecodingKey) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        if let Some(set) = self.current()
            && let Some(key) = set.key_for(kid, alg)?
        {
            crate::metrics::metrics().cache("jwks", true);
            return f(key);
        }
        crate::metrics::metrics().cache("jwks", false);
        let set = self
            .refetch_for_unknown_kid()
            .await
            .ok_or(AuthError::KeysUnavailable)?;
        match set.key_for(kid, alg)? {
            Some(key) => f(key),
            None => Err(AuthError::UnknownKid),
        }
    }
}

/// One key-set fetch, counted and timed.
async fn fetch(
    http: &reqwest::Client,
    discovery_url: &Url,
    issuer: &str,
) -> Result<Arc<KeySet>, FetchError> {
    let m = crate::metrics::metrics();
    let started = Instant::now();
    let result = fetch_once(http, discovery_url, issuer).await;
    m.observe_upstream("idp", "jwks", started.elapsed());
    match &result {
        Ok(set) => {
            m.jwks_refreshes.with_label_values(&["ok"]).inc();
            m.jwks_keys.set(set.len() as i64);
        }
        Err(e) => {
            m.jwks_refreshes.with_label_values(&["failed"]).inc();
            m.upstream_error("idp", e.kind());
        }
    }
    result
}

async fn fetch_once(
    http: &reqwest::Client,
    discovery_url: &Url,
    issuer: &str,
) -> Result<Arc<KeySet>, FetchError> {
    let doc = get_bounded(http, discovery_url, MAX_DOCUMENT_BYTES).await?;
    let doc: DiscoveryDocument = serde_json::from_slice(&doc)
        .map_err(|e| FetchError::Invalid(format!("discovery document: {e}")))?;
    // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
    if doc.issuer != issuer {
        return Err(FetchError::Invalid(
            "discovery document names another issuer".into(),
        ));
    }
    let jwks_uri =
        Url::parse(&doc.jwks_uri).map_err(|e| FetchError::Invalid(format!("jwks_uri: {e}")))?;
    let jwks = get_bounded(http, &jwks_uri, MAX_DOCUMENT_BYTES).await?;
    let mut set = KeySet::from_jwks_json(&jwks)?;
    set.endpoints = OAuthEndpoints {
        authorization: doc.authorization_endpoint,
        token: doc.token_endpoint,
    };
    tracing::info!(keys = set.len(), "loaded IdP signing keys");
    Ok(Arc::new(set))
}
