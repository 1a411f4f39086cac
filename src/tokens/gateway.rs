//! Gateway-issued WOPI access tokens. Office apps get these instead of the wopiserver's tokens,
//! which carry the user's REVA token in clear and run to ~2 KB. A gateway token names the user,
//! the resource, the office app, the view mode and the expiry; it is sealed with
//! XChaCha20-Poly1305 under a key from a file (so it is both authenticated and opaque), and stays
//! far below Microsoft's 1500-character limit. Nothing in it is a credential: the gateway turns
//! it into a wopiserver token itself (see [`super::remembered`]), so any replica with the same key can
//! serve any token; no shared state is needed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::Resource;
use crate::secret::Secret;
use crate::tokens::reva::UserClaim;
use crate::wopi::ViewMode;

/// Every gateway token starts with this; wopiserver tokens are JWTs (`eyJ…`).
pub const PREFIX: &str = "wg1.";
/// Microsoft's limit for a token after URL encoding.
pub const MAX_URL_ENCODED: usize = 1500;
const AAD: &[u8] = b"wopigate access token v1";
const KID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
/// Longer input is refused before any decoding.
const MAX_TOKEN_LEN: usize = 4096;

/// What a token grants access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "f")]
    File,
    #[serde(rename = "c")]
    Container,
    #[serde(rename = "e")]
    Ecosystem,
}

/// The content of a gateway token: who, what it grants, until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Sealed", into = "Sealed")]
pub struct Claims {
    pub grant: Grant,
    /// The user, as a REVA token would name them (to mint one when needed).
    pub user: UserClaim,
    /// Issued to Office for iOS/Android (bootstrapper, containers): CheckFileInfo is amended.
    pub mobile: bool,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The OIDC login the token descends from: what a revocation matches.
    pub login: Login,
}

/// The OIDC login behind a token, kept by every token derived from it (Save As, containers,
/// renewals), so revoking the login reaches them all. Tokens sealed before logins were
/// recorded open with `iat` 0: issued before any revocation, so every revocation matches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    /// When the user logged in to the gateway (the OIDC token's use), Unix seconds.
    pub iat: u64,
    /// The IdP's session (`sid`), when the login had one.
    pub sid: Option<String>,
    /// The OIDC `sub`, when it differs from the REVA user's opaque id (it is the same under the
    /// default claim mapping).
    pub sub: Option<String>,
}

impl Login {
    /// The login of a validated OIDC token: when the IdP issued it (a token without `iat`
    /// counts as issued at the epoch: every revocation of its user reaches it), its `sub`, and
    /// its `sid` when it had one.
    pub fn of(claims: &serde_json::Map<String, serde_json::Value>, user: &UserClaim) -> Self {
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            iat: claims.get("iat").and_then(|v| v.as_u64()).unwrap_or(0),
            sid: text("sid").filter(|s| !s.is_empty()),
            sub: text("sub").filter(|s| *s != user.id.opaque_id),
        }
    }

    /// The subject a user revocation names: the OIDC `sub`.
    pub fn subject<'a>(&'a self, user: &'a UserClaim) -> &'a str {
        self.sub.as_deref().unwrap_or(&user.id.opaque_id)
    }
}

/// What a token grants access to; each grant carries exactly what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    File(FileGrant),
    /// A folder (Office for iOS/Android's containers).
    Container(Resource),
    /// The user's ecosystem (Office for iOS/Android).
    Ecosystem,
}

/// A file, opened for an office app in a view mode.
#[derive(Debug, Clone, PartialEq)]
pub struct FileGrant {
    pub resource: Resource,
    /// The office app (`appname`) the file was opened for; none when no app opens its type.
    pub app: Option<String>,
    pub view_mode: ViewMode,
}

impl Claims {
    pub fn kind(&self) -> Kind {
        match self.grant {
            Grant::File(_) => Kind::File,
            Grant::Container(_) => Kind::Container,
            Grant::Ecosystem => Kind::Ecosystem,
        }
    }

    /// The file a file token grants.
    pub fn file(&self) -> Option<&FileGrant> {
        match &self.grant {
            Grant::File(f) => Some(f),
            _ => None,
        }
    }

    /// The file or folder the token names (none for the ecosystem).
    pub fn resource(&self) -> Option<&Resource> {
        match &self.grant {
            Grant::File(f) => Some(&f.resource),
            Grant::Container(r) => Some(r),
            Grant::Ecosystem => None,
        }
    }

    /// A file token that may write (opened, and not downgraded, read-write).
    pub fn writable(&self) -> bool {
        self.file()
            .is_some_and(|f| f.view_mode == ViewMode::ReadWrite)
    }
}

/// The claims as sealed: short keys, flat, kept stable so that tokens survive an upgrade.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "k")]
    kind: Kind,
    #[serde(rename = "u")]
    user: UserClaim,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    resource: Option<Resource>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    /// `VIEW_MODE_*`.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    view_mode: Option<String>,
    #[serde(rename = "b", default, skip_serializing_if = "std::ops::Not::not")]
    mobile: bool,
    #[serde(rename = "x")]
    exp: u64,
    #[serde(rename = "i", default, skip_serializing_if = "is_zero")]
    iat: u64,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl From<Claims> for Sealed {
    fn from(c: Claims) -> Self {
        let (kind, resource, app, view_mode) = match c.grant {
            Grant::File(f) => (
                Kind::File,
                Some(f.resource),
                f.app,
                Some(f.view_mode.as_str().to_owned()),
            ),
            Grant::Container(r) => (Kind::Container, Some(r), None, None),
            Grant::Ecosystem => (Kind::Ecosystem, None, None, None),
        };
        Self {
            kind,
            user: c.user,
            resource,
            app,
            view_mode,
            mobile: c.mobile,
            exp: c.exp,
            iat: c.login.iat,
            sid: c.login.sid,
            sub: c.login.sub,
        }
    }
}

impl TryFrom<Sealed> for Claims {
    type Error = &'static str;

    fn try_from(s: Sealed) -> Result<Self, Self::Error> {
        let grant = match (s.kind, s.resource) {
            (Kind::File, Some(resource)) => Grant::File(FileGrant {
                resource,
                app: s.app,
                view_mode: s
                    .view_mode
                    .as_deref()
                    .and_then(ViewMode::parse)
                    .ok_or("a file token without its view mode")?,
            }),
            (Kind::Container, Some(r)) => Grant::Container(r),
            (Kind::Ecosystem, None) => Grant::Ecosystem,
            _ => return Err("a token without the resource its kind needs"),
        };
        Ok(Self {
            grant,
            user: s.user,
            mobile: s.mobile,
            exp: s.exp,
            login: Login {
                iat: s.iat,
                sid: s.sid,
                sub: s.sub,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a gateway token")]
    Malformed,
    #[error("token does not verify")]
    BadSeal,
    #[error("token expired")]
    Expired,
}

struct Key {
    id: [u8; KID_LEN],
    cipher: XChaCha20Poly1305,
}

impl Key {
    /// The key is SHA-256 of the file's content, so any long random text works as a key file.
    fn from_secret(secret: &Secret) -> Self {
        let key: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        let mut h = Sha256::new();
        h.update(b"wopigate token key id");
        h.update(key);
        let digest = h.finalize();
        let mut id = [0u8; KID_LEN];
        id.copy_from_slice(&digest[..KID_LEN]);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }
}

/// The current key (issues and verifies) and the previous one (verifies only), for rotation.
pub struct TokenKeys {
    current: Key,
    previous: Option<Key>,
    /// Tokens this key set has opened, with their claims: an office app repeats the same token
    /// on every WOPI call, and opening one (base64, AEAD, JSON) was 5 % of a proxied
    /// CheckFileInfo. Only tokens that verified get in; the cache goes with the keys, so a
    /// retired key's tokens stop verifying with the reload that retires it.
    opened: moka::sync::Cache<String, Claims>,
}

/// How much memory opened tokens may hold, and how long one is kept without use.
const OPENED_BYTES: u64 = 16 << 20;
const OPENED_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

impl TokenKeys {
    pub fn new(current: &Secret, previous: Option<&Secret>) -> Self {
        Self {
            current: Key::from_secret(current),
            previous: previous.map(Key::from_secret),
            // By bytes: the token and its claims (a user's names, ids and sid: well under 1 KiB).
            opened: moka::sync::Cache::builder()
                .weigher(|t: &String, _: &Claims| u32::try_from(t.len() + 1024).unwrap_or(u32::MAX))
                .max_capacity(OPENED_BYTES)
                .time_to_idle(OPENED_IDLE)
                .build(),
        }
    }

    /// Seals `claims` under the current key. Serialising these claims and sealing them with a
    /// valid key cannot fail; if it ever did, the token would be one that never opens (it
    /// fails closed, granting nothing).
    pub fn issue(&self, claims: &Claims) -> String {
        let plain = serde_json::to_vec(claims).unwrap_or_default();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .unwrap_or_default();
        let mut raw = Vec::with_capacity(KID_LEN + NONCE_LEN + sealed.len());
        raw.extend_from_slice(&self.current.id);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Opens and checks a token; `now` is Unix seconds. Expiry is checked on every call.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let claims = match self.opened.get(token) {
            Some(claims) => claims,
            None => {
                let claims = self.open(token)?;
                self.opened.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn open(&self, token: &str) -> Result<Claims, TokenError> {
        let body = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < KID_LEN + NONCE_LEN + 16 {
            return Err(TokenError::Malformed);
        }
        let (kid, rest) = raw.split_at(KID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| TokenError::Malformed)?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == kid)
            .ok_or(TokenError::BadSeal)?;
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| TokenError::BadSeal)?;
        serde_json::from_slice(&plain).map_err(|_| TokenError::Malformed)
    }
}

/// A (possibly percent-encoded) `access_token` value that is a gateway token.
pub fn is_gateway_token(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The token's length once URL-encoded (base64url and `.` need no encoding, but measure).
pub fn url_encoded_len(token: &str) -> usize {
    url::form_urlencoded::byte_serialize(token.as_bytes())
        .map(str::len)
        .sum()
}

#[cfg(test)]
mod tests;
