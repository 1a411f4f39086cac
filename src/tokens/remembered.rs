//! The wopiserver tokens behind gateway tokens: obtained by `openinapp` (at the open itself, or
//! on first use of a gateway token on this replica) and cached until shortly before the earliest
//! of the wopiserver token, the REVA token inside it and the gateway token expire. The cache is
//! only a cache: any replica rebuilds an entry from the gateway token alone (with a REVA token it
//! mints), so replicas need no shared store and a REVA token never expires under a live gateway
//! token.
//!
//! The wopiserver names the file by its **path** in its token (cs3-wopiserver.md §7): after a
//! file or a folder above it is renamed, a remembered token points at the old path. The entries
//! of the renamed file (or of every file below the renamed folder) are then forgotten, so the
//! next call of the session gets a token for the new path; an entry whose file the wopiserver
//! no longer finds (404, e.g. renamed through another replica) is forgotten as well.

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
    /// Storage id and opaque id of the file, and its path, as the wopiserver token names them.
    file: Arc<(String, String, String)>,
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
    upstream: moka::future::Cache<[u8; 32], Upstream>,
    /// Users' files whose access REVA confirmed within the re-check interval: the `openinapp`
    /// a remembered token comes from Stat-s the file, and so does a re-check.
    pub confirmed: moka::future::Cache<Confirmed, ()>,
}

/// Who may (still) open which file: the user (`opaque@idp`), storage id and opaque id.
pub type Confirmed = (String, String, String);

/// The [`Confirmed`] key of a file token.
pub fn confirmed_key(claims: &Claims) -> Option<Confirmed> {
    let f = claims.file()?;
    Some((
        format!("{}@{}", claims.user.id.opaque_id, claims.user.id.idp),
        f.resource.storage_id.clone(),
        f.resource.opaque_id.clone(),
    ))
}

/// The remembered tokens' memory bound. One entry weighs its wopiserver token (~2 KiB: the
/// REVA token rides inside) plus the file's ids and path: 64 MiB hold ~25 000 sessions in use.
const REMEMBERED_BYTES: u64 = 64 << 20;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenWrap {
    /// `idle`: a remembered token unused this long is dropped (the next use renews it,
    /// unseen by the office app).
    /// `recheck`: how long REVA's word on a user's access to a file holds.
    pub fn new(keys: TokenKeys, ttl: Duration, idle: Duration, recheck: Duration) -> Self {
        Self {
            keys,
            ttl,
            confirmed: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(recheck)
                .build(),
            upstream: moka::future::Cache::builder()
                .weigher(|_, u: &Upstream| {
                    let (s, o, p) = &*u.file;
                    let bytes = 32 + u.token.expose().len() + s.len() + o.len() + p.len() + 96;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(REMEMBERED_BYTES)
                .expire_after(super::AtExpiryOrIdle { idle })
                .support_invalidation_closures()
                .build(),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Arc<str> {
        Arc::from(self.keys.issue(claims))
    }

    /// The one way a gateway token for a file comes to be: issued for `claims` and the
    /// wopiserver token behind it (just received from `openinapp`) remembered until the
    /// earliest of its own expiry, the REVA token's inside it (`reva_exp`) and the gateway
    /// token's.
    pub async fn issue_remembering(
        &self,
        claims: &Claims,
        upstream: &Secret,
        reva_exp: u64,
    ) -> Arc<str> {
        let token = self.issue(claims);
        self.remember_behind(&token, claims, upstream, reva_exp)
            .await;
        token
    }

    /// Remembers a renewed wopiserver token behind an existing gateway token of `claims`,
    /// bounded like [`Self::issue_remembering`]; the `openinapp` it came from confirmed the
    /// user's access to the file.
    pub async fn remember_behind(
        &self,
        gateway_token: &str,
        claims: &Claims,
        upstream: &Secret,
        reva_exp: u64,
    ) {
        let upstream_exp = super::reva::unverified_exp(upstream.expose()).unwrap_or(0);
        let until = upstream_until(upstream_exp, reva_exp, claims.exp);
        self.remember(gateway_token, upstream.clone(), until).await;
        if let Some(key) = confirmed_key(claims) {
            self.confirmed.insert(key, ()).await;
        }
    }

    /// Remembers the wopiserver token for a gateway token until `until` (Unix seconds, already
    /// the earliest relevant expiry).
    async fn remember(&self, gateway_token: &str, upstream: Secret, until: u64) {
        let until = until.saturating_sub(RENEW_MARGIN);
        if until > now() {
            let c = super::wopiserver::read(upstream.expose()).unwrap_or_default();
            let storage = c.endpoint.split('$').next().unwrap_or_default().to_owned();
            self.upstream
                .insert(
                    digest(gateway_token),
                    Upstream {
                        token: upstream,
                        until,
                        file: Arc::new((storage, c.fileid, c.filename)),
                    },
                )
                .await;
        }
    }

    /// Forgets the wopiserver token behind one gateway token (the next use renews it).
    pub async fn forget(&self, gateway_token: &str) {
        self.upstream.invalidate(&digest(gateway_token)).await;
    }

    /// Forgets the wopiserver tokens of a file that was renamed (`storage_id`, `opaque_id`), or
    /// of every file at or below `path` (a renamed folder): they name the old path.
    pub fn forget_renamed(&self, renamed: Renamed) {
        let forgotten = self.upstream.invalidate_entries_if(move |_, u| {
            let (storage, opaque, path) = &*u.file;
            match &renamed {
                Renamed::File {
                    storage_id,
                    opaque_id,
                } => storage == storage_id && opaque == opaque_id,
                Renamed::Folder { path: folder } => path
                    .strip_prefix(folder.as_str())
                    .is_some_and(|rest| rest.starts_with('/')),
            }
        });
        if let Err(e) = forgotten {
            tracing::warn!(error = %e, "could not forget the wopiserver tokens of a renamed file");
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

/// What was renamed: the remembered tokens that name it by its old path are forgotten.
#[derive(Debug, Clone)]
pub enum Renamed {
    File {
        storage_id: String,
        opaque_id: String,
    },
    /// A folder, by its path before the rename.
    Folder { path: String },
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
            Duration::from_secs(1800),
            Duration::from_secs(300),
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

    #[tokio::test]
    async fn a_remembered_token_unused_for_the_idle_time_goes_and_one_in_use_stays() {
        let w = TokenWrap::new(
            TokenKeys::new(&Secret::new("k".repeat(40)), None),
            Duration::from_secs(3600),
            Duration::from_millis(400),
            Duration::from_secs(300),
        );
        let until = now() + 3600;
        w.remember("used", upstream("f1", "/home/a.odt"), until)
            .await;
        w.remember("idle", upstream("f2", "/home/b.odt"), until)
            .await;
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(w.cached("used").await.is_some(), "kept while in use");
        }
        assert!(
            w.cached("idle").await.is_none(),
            "dropped after 400 ms unused"
        );
    }

    /// A wopiserver-shaped token naming a file by id and path.
    fn upstream(opaque: &str, path: &str) -> Secret {
        use base64::Engine;
        let payload = serde_json::json!({
            "fileid": opaque, "endpoint": "st$sp", "filename": path, "exp": now() + 3600,
        });
        Secret::new(format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string())
        ))
    }

    #[tokio::test]
    async fn renamed_files_and_folders_forget_the_tokens_that_name_their_old_path() {
        let w = wrap();
        let until = now() + 3600;
        w.remember("a", upstream("f1", "/home/docs/a.odt"), until)
            .await;
        w.remember("a2", upstream("f1", "/home/docs/a.odt"), until)
            .await;
        w.remember("b", upstream("f2", "/home/docs/sub/b.odt"), until)
            .await;
        w.remember("c", upstream("f3", "/home/docs2/c.odt"), until)
            .await;
        w.forget_renamed(Renamed::File {
            storage_id: "st".into(),
            opaque_id: "f1".into(),
        });
        assert!(w.cached("a").await.is_none() && w.cached("a2").await.is_none());
        assert!(w.cached("b").await.is_some());
        // A folder: everything below it, not a sibling whose name merely starts the same.
        w.forget_renamed(Renamed::Folder {
            path: "/home/docs".into(),
        });
        assert!(w.cached("b").await.is_none());
        assert!(w.cached("c").await.is_some());
        w.forget("c").await;
        assert!(w.cached("c").await.is_none());
    }
}
