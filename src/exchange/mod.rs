//! Token exchange: a validated OIDC identity becomes a REVA token (issue #3 point 4). Either
//! minted here with the REVA secret (`mint`), or obtained from REVA's `Authenticate` so the
//! gateway holds no REVA secret at all (`authenticate`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jsonwebtoken::EncodingKey;

use crate::auth::Principal;
use crate::config::{ClaimNames, Exchange as ExchangeConfig, ExchangeMode};
use crate::reva::{RevaClient, RevaError};
use crate::secret::{Secret, token_digest};
use crate::tokens::now;

use crate::tokens::reva::{self as reva_token, RevaToken, UserClaim, UserIdClaim};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("token lacks the claim {0:?} needed to identify the user")]
    MissingClaim(String),
    #[error("could not mint a REVA token")]
    MintFailed,
    /// Authenticate mode holds no credential of its own: without the user's OIDC token there is
    /// nothing to present to REVA.
    #[error("no credential to obtain a REVA token for this user")]
    NoCredential,
    #[error(transparent)]
    Reva(#[from] RevaError),
}

/// The memory a REVA token cache may hold (each entry ~1–2 KiB).
const TOKEN_CACHE_BYTES: u64 = 32 << 20;

/// Mints REVA tokens locally and re-uses one per user until three quarters of its TTL are
/// spent, so a burst of opens signs once and every handed-out token still has a quarter left.
pub struct Minter {
    key: EncodingKey,
    ttl: Duration,
    claims: ClaimNames,
    /// Keyed by the whole user claim: two users can only share a token if every claim they
    /// would carry is equal.
    cache: moka::future::Cache<UserClaim, Arc<RevaToken>>,
}

impl Minter {
    pub fn new(secret: &Secret, ttl: Duration, claims: ClaimNames) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.expose().as_bytes()),
            ttl,
            claims,
            // By bytes: the user claim's strings and the minted token (~1 KiB).
            cache: moka::future::Cache::builder()
                .weigher(|u: &UserClaim, t: &Arc<RevaToken>| {
                    let user = u.id.idp.len()
                        + u.id.opaque_id.len()
                        + u.username.len()
                        + u.mail.len()
                        + u.display_name.len();
                    u32::try_from(user + t.token.expose().len() + 128).unwrap_or(u32::MAX)
                })
                .max_capacity(TOKEN_CACHE_BYTES)
                .time_to_live(ttl * 3 / 4)
                .build(),
        }
    }

    /// The REVA user for an OIDC identity, from the configured claim names.
    pub fn user_of(&self, p: &Principal) -> Result<UserClaim, ExchangeError> {
        let required = |name: &str| {
            p.claim_str(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ExchangeError::MissingClaim(name.to_owned()))
        };
        let optional = |name: &str| p.claim_str(name).unwrap_or_default().to_owned();
        Ok(UserClaim {
            id: UserIdClaim {
                idp: required(&self.claims.idp)?,
                opaque_id: required(&self.claims.opaque_id)?,
                user_type: reva_token::USER_TYPE_PRIMARY,
            },
            username: optional(&self.claims.username),
            mail: optional(&self.claims.mail),
            mail_verified: p
                .claims
                .get("email_verified")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            display_name: optional(&self.claims.display_name),
            groups: Vec::new(),
        })
    }

    pub async fn token_for(&self, user: &UserClaim) -> Result<Arc<RevaToken>, ExchangeError> {
        let fresh = AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with(user.clone(), async {
                fresh.store(true, Ordering::Relaxed);
                reva_token::mint(&self.key, user, self.ttl, now())
                    .map(Arc::new)
                    .map_err(|_| ExchangeError::MintFailed)
            })
            .await
            .map_err(|e| (*e).clone());
        crate::metrics::metrics().cache("reva_token", !fresh.load(Ordering::Relaxed));
        result
    }
}

/// Exchanges through REVA's `Authenticate`; results are cached per OIDC token until the earlier
/// of both expiries.
pub struct Authenticator {
    reva: RevaClient,
    kind: String,
    client_id: String,
    cache: moka::future::Cache<[u8; 32], Cached>,
}

/// A REVA token and how long the cache may hand it out for this OIDC token.
#[derive(Clone)]
struct Cached {
    token: Arc<RevaToken>,
    until: u64,
}

impl crate::tokens::Expires for Cached {
    fn expires_at(&self) -> u64 {
        self.until
    }
}

impl Authenticator {
    pub fn new(reva: RevaClient, kind: String, client_id: String) -> Self {
        Self {
            reva,
            kind,
            client_id,
            cache: moka::future::Cache::builder()
                .weigher(|_: &[u8; 32], c: &Cached| {
                    u32::try_from(c.token.token.expose().len() + 96).unwrap_or(u32::MAX)
                })
                .max_capacity(TOKEN_CACHE_BYTES)
                .expire_after(crate::tokens::AtExpiry)
                .build(),
        }
    }

    async fn token_for(
        &self,
        principal: &Principal,
        oidc_token: &str,
    ) -> Result<Arc<RevaToken>, ExchangeError> {
        let fresh = AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with(token_digest(oidc_token), async {
                fresh.store(true, Ordering::Relaxed);
                let (token, _user) = self
                    .reva
                    .authenticate(&self.kind, &self.client_id, oidc_token)
                    .await?;
                // An opaque REVA token has no readable `exp`: assume it ends with the OIDC token.
                let expires_at =
                    reva_token::unverified_exp(token.expose()).unwrap_or(principal.expires_at);
                let remaining = expires_at.saturating_sub(now());
                Ok::<_, ExchangeError>(Cached {
                    token: Arc::new(RevaToken { token, expires_at }),
                    // Re-use while both tokens live and a quarter of REVA's lifetime is left.
                    until: principal.expires_at.min(now() + remaining * 3 / 4),
                })
            })
            .await
            .map(|c| c.token)
            .map_err(|e| (*e).clone());
        crate::metrics::metrics().cache("reva_token", !fresh.load(Ordering::Relaxed));
        result
    }
}

pub enum Exchanger {
    Mint(Minter),
    Authenticate(Authenticator),
}

impl Exchanger {
    pub fn from_config(
        c: &ExchangeConfig,
        reva_secret: Option<&Secret>,
        reva: &RevaClient,
    ) -> Option<Self> {
        Some(match c.mode {
            ExchangeMode::Mint => {
                Self::Mint(Minter::new(reva_secret?, c.token_ttl, c.claims.clone()))
            }
            ExchangeMode::Authenticate => Self::Authenticate(Authenticator::new(
                reva.clone(),
                c.authenticate_type.clone(),
                c.authenticate_client_id.clone(),
            )),
        })
    }

    /// The REVA user a principal maps to (mint mode; authenticate mode leaves that to REVA).
    pub fn user_of(&self, principal: &Principal) -> Option<UserClaim> {
        match self {
            Self::Mint(m) => m.user_of(principal).ok(),
            Self::Authenticate(_) => None,
        }
    }

    /// A REVA token for a user named by a gateway token (mint mode only: authenticate mode has
    /// no credential to present without the user's OIDC token).
    pub async fn for_user(&self, user: &UserClaim) -> Result<Arc<RevaToken>, ExchangeError> {
        let (mode, result) = match self {
            Self::Mint(m) => ("mint", m.token_for(user).await),
            Self::Authenticate(_) => ("authenticate", Err(ExchangeError::NoCredential)),
        };
        count_exchange(mode, &result);
        result
    }

    pub async fn exchange(
        &self,
        principal: &Principal,
        oidc_token: &str,
    ) -> Result<Arc<RevaToken>, ExchangeError> {
        let (mode, result) = match self {
            Self::Mint(m) => (
                "mint",
                match m.user_of(principal) {
                    Ok(user) => m.token_for(&user).await,
                    Err(e) => Err(e),
                },
            ),
            Self::Authenticate(a) => ("authenticate", a.token_for(principal, oidc_token).await),
        };
        count_exchange(mode, &result);
        result
    }
}

fn count_exchange<T>(mode: &'static str, result: &Result<T, ExchangeError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(ExchangeError::MissingClaim(_)) => "missing_claim",
        Err(ExchangeError::MintFailed) => "mint_failed",
        Err(ExchangeError::NoCredential) => "no_credential",
        Err(ExchangeError::Reva(_)) => "reva_error",
    };
    crate::metrics::metrics()
        .token_exchanges
        .with_label_values(&[mode, outcome])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::reva::{UserClaim, UserIdClaim};

    fn user(opaque: &str, name: &str) -> UserClaim {
        UserClaim {
            id: UserIdClaim {
                idp: "https://idp.example".into(),
                opaque_id: opaque.into(),
                user_type: reva_token::USER_TYPE_PRIMARY,
            },
            display_name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_minted_token_is_shared_only_by_identical_users() {
        let m = Minter::new(
            &Secret::new("a-long-enough-test-secret"),
            Duration::from_secs(3600),
            ClaimNames::default(),
        );
        let alice = m.token_for(&user("alice", "Alice")).await.unwrap();
        assert_eq!(
            alice.token.expose(),
            m.token_for(&user("alice", "Alice"))
                .await
                .unwrap()
                .token
                .expose(),
            "re-used for the same user"
        );
        // Any claim that differs is another cache entry: the key is the whole user claim (it
        // was a digest of its JSON, which would have merged users had serialising failed).
        for other in [user("bob", "Alice"), user("alice", "Alice B.")] {
            let t = m.token_for(&other).await.unwrap();
            assert_ne!(t.token.expose(), alice.token.expose());
        }
    }
}
