//! The wopiserver tokens behind gateway tokens: obtained by `openinapp` (at the open itself, or
//! on first use of a gateway token on this replica) and cached until shortly before the earliest
//! of the wopiserver token, the REVA token inside it and the gateway token expire. The cache is
//! only a cache: any replica rebuilds an entry from the gateway token alone (with a REVA token it
//! mints), so replicas need no shared store and a REVA token never expires under a live gateway
//! token.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::now;
use crate::secret::Secret;
use crate::tokens::gateway::{Claims, TokenKeys};

/// Renew this long before the upstream token or the REVA token in it expires.
const RENEW_MARGIN: u64 = 120;

#[derive(Clone)]
struct Upstream {
    token: Secret,
    until: u64,
}

impl super::Expires for Upstream {
    fn expires_at(&self) -> u64 {
        self.until
    }
}

pub struct TokenWrap {
    pub keys: TokenKeys,
    /// Lifetime of tokens minted from an OIDC login.
    pub ttl: Duration,
    /// Whether the open API hands out gateway tokens.
    pub wrap_open: bool,
    upstream: moka::future::Cache<[u8; 32], Upstream>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenWrap {
    pub fn new(keys: TokenKeys, ttl: Duration, wrap_open: bool) -> Self {
        Self {
            keys,
            ttl,
            wrap_open,
            upstream: moka::future::Cache::builder()
                .max_capacity(200_000)
                .expire_after(super::AtExpiry)
                .build(),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Arc<str> {
        Arc::from(self.keys.issue(claims))
    }

    /// Remembers the wopiserver token for a gateway token until `until` (Unix seconds, already
    /// the earliest relevant expiry).
    pub async fn remember(&self, gateway_token: &str, upstream: Secret, until: u64) {
        let until = until.saturating_sub(RENEW_MARGIN);
        if until > now() {
            self.upstream
                .insert(
                    digest(gateway_token),
                    Upstream {
                        token: upstream,
                        until,
                    },
                )
                .await;
        }
    }

    pub async fn cached(&self, gateway_token: &str) -> Option<Secret> {
        let hit = self
            .upstream
            .get(&digest(gateway_token))
            .await
            .filter(|u| u.until > now())
            .map(|u| u.token);
        crate::metrics::metrics().cache("upstream_token", hit.is_some());
        hit
    }
}

/// The earliest expiry that bounds an upstream token's use.
pub fn upstream_until(upstream_exp: u64, reva_exp: u64, gateway_exp: u64) -> u64 {
    upstream_exp.min(reva_exp).min(gateway_exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap() -> TokenWrap {
        TokenWrap::new(
            TokenKeys::new(&Secret::new("k".repeat(40)), None),
            Duration::from_secs(3600),
            true,
        )
    }

    #[tokio::test]
    async fn upstream_tokens_are_dropped_before_the_reva_token_inside_expires() {
        let w = wrap();
        // The REVA token inside ends in 10 minutes: usable now, renewed 2 minutes before.
        let until = upstream_until(now() + 86_400, now() + 600, now() + 36_000);
        w.remember("g1", Secret::new("upstream-1"), until).await;
        assert_eq!(w.cached("g1").await.unwrap().expose(), "upstream-1");
        // Within the renewal margin: not cached at all, so the next use renews.
        let soon = upstream_until(now() + 86_400, now() + RENEW_MARGIN - 1, now() + 36_000);
        w.remember("g2", Secret::new("upstream-2"), soon).await;
        assert!(w.cached("g2").await.is_none());
        // Bounded by the gateway token too.
        assert_eq!(upstream_until(10, 20, 5), 5);
        assert!(w.cached("unknown").await.is_none());
    }
}
