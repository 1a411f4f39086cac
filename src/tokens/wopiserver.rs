//! Reading a wopiserver access token's payload without its key. The wopiserver still verifies the
//! signature; the gateway only uses these claims to refuse early (expired tokens), to pick the
//! office app for proof checks, never to grant anything.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The claims wopigate reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct UnverifiedClaims {
    #[serde(default)]
    pub exp: u64,
    #[serde(default)]
    pub appname: String,
    /// For cs3 storage: the REVA token, in clear.
    #[serde(default)]
    pub userid: String,
    /// `VIEW_MODE_*`.
    #[serde(default)]
    pub viewmode: String,
    /// The file: REVA's opaque id and `storage[$space]`.
    #[serde(default)]
    pub fileid: String,
    #[serde(default)]
    pub endpoint: String,
    /// The file's path: the wopiserver addresses the file by it.
    #[serde(default)]
    pub filename: String,
}

/// `None` when the token is not a JWT with a JSON payload.
pub fn read(token: &str) -> Option<UnverifiedClaims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What the proxied path needs from a wopiserver token: its office app and effective expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub appname: Arc<str>,
    pub exp: u64,
    /// Opened read-write (`VIEW_MODE_READ_WRITE`).
    pub read_write: bool,
    /// Whose token it is and for which file, for revocations.
    pub holder: Arc<Holder>,
}

/// The user, login and file a wopiserver token names (unverified: the wopiserver verifies;
/// the gateway only refuses more with them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// The REVA user's opaque id (the OIDC `sub` under the default claim mapping).
    pub user: String,
    /// The REVA token's `iat`: when the login it came from was exchanged.
    pub iat: u64,
    pub storage_id: String,
    pub opaque_id: String,
}

impl Holder {
    fn of(c: &UnverifiedClaims) -> Self {
        let (user, iat) = crate::tokens::reva::unverified_login(&c.userid).unwrap_or_default();
        let storage = c.endpoint.split('$').next().unwrap_or_default();
        Self {
            user,
            iat,
            storage_id: storage.to_owned(),
            opaque_id: c.fileid.clone(),
        }
    }
}

/// Facts of the wopiserver tokens seen recently. An office app repeats its token on every call,
/// and reading one means decoding two nested JWT payloads (~2 KiB of base64 and JSON) — most of
/// what the pass-through path did per request. Keyed by the token's signature, confirmed
/// against the whole token, so a token is never taken for another.
pub struct Seen {
    cache: moka::sync::Cache<Arc<str>, Arc<(Box<str>, Facts)>>,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            // Bounded by bytes, not entries: a wopiserver token is ~2 KiB (the REVA token
            // rides inside it), so 8 MiB holds a few thousand open documents' tokens.
            cache: moka::sync::Cache::builder()
                .weigher(|k: &Arc<str>, v: &Arc<(Box<str>, Facts)>| {
                    u32::try_from(k.len() + v.0.len() + v.1.appname.len() + 64).unwrap_or(u32::MAX)
                })
                .max_capacity(8 << 20)
                .time_to_idle(std::time::Duration::from_secs(300))
                .build(),
        }
    }
}

impl Seen {
    /// The token's facts; `None` when it is not a JWT with a JSON payload.
    pub fn facts(&self, token: &str) -> Option<Facts> {
        let signature = token.rsplit('.').next().unwrap_or_default();
        if let Some(hit) = self.cache.get(signature)
            && *hit.0 == *token
        {
            return Some(hit.1.clone());
        }
        let claims = read(token)?;
        let facts = Facts {
            holder: Arc::new(Holder::of(&claims)),
            exp: effective_exp(&claims),
            read_write: claims.viewmode == "VIEW_MODE_READ_WRITE",
            appname: Arc::from(claims.appname),
        };
        if !signature.is_empty() {
            self.cache.insert(
                Arc::from(signature),
                Arc::new((Box::from(token), facts.clone())),
            );
        }
        Some(facts)
    }
}

/// The earlier of the WOPI token's `exp` and, when `userid` is a JWT (a REVA token), its `exp`.
pub fn effective_exp(c: &UnverifiedClaims) -> u64 {
    match crate::tokens::reva::unverified_exp(&c.userid) {
        Some(reva) => reva.min(c.exp),
        None => c.exp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_claims_and_the_embedded_reva_expiry() {
        let reva = format!("x.{}.y", URL_SAFE_NO_PAD.encode(r#"{"exp":100}"#));
        let wopi = format!(
            "h.{}.s",
            URL_SAFE_NO_PAD.encode(
                serde_json::json!({"exp": 200, "appname": "Collabora", "userid": reva}).to_string()
            )
        );
        let c = read(&wopi).unwrap();
        assert_eq!((c.exp, c.appname.as_str()), (200, "Collabora"));
        assert_eq!(effective_exp(&c), 100);
        assert!(read("not-a-jwt").is_none());
        assert!(read("a.b.c.d").is_none());
        assert!(read("a.!!!.c").is_none());
    }

    #[test]
    fn seen_tokens_are_remembered_by_signature_and_never_confused() {
        let token = |exp: u64, app: &str| {
            format!(
                "h.{}.same-signature",
                URL_SAFE_NO_PAD.encode(serde_json::json!({"exp": exp, "appname": app}).to_string())
            )
        };
        let seen = Seen::default();
        let (a, b) = (token(200, "Collabora"), token(300, "OnlyOffice"));
        let fa = seen.facts(&a).unwrap();
        assert_eq!((&*fa.appname, fa.exp), ("Collabora", 200));
        assert_eq!(seen.facts(&a).unwrap(), fa);
        // Same signature, another payload: read afresh, not taken from the first.
        let fb = seen.facts(&b).unwrap();
        assert_eq!((&*fb.appname, fb.exp), ("OnlyOffice", 300));
        assert_eq!(seen.facts(&a).unwrap(), fa);
        assert!(seen.facts("not-a-jwt").is_none());
    }
}
