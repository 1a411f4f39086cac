//! The operator's control point: what the gateway revokes, and the store replicas share it
//! through. Built once per process (a configuration reload keeps it: a revocation must not be
//! forgotten because a certificate was renewed); one replica needs no store, several share
//! one (Redis or Valkey, [`store`]).

pub mod activity;
pub mod records;
pub mod revocation;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use activity::Activity;
use revocation::{Entry, Presented, Revocations, Scope};
use store::{Store, Unavailable};

use crate::config::Config;
use crate::tokens::now;

/// The wopiserver's default `tokenvalidity`: how long a pass-through wopiserver token lives.
const WOPISERVER_TOKEN_LIFE: u64 = 86_400;

pub struct Control {
    pub revocations: Arc<Revocations>,
    /// Sessions and locks seen.
    pub activity: Activity,
    /// The shared store; `None` for one replica on its own.
    pub store: Option<Arc<Store>>,
    /// How long an entry can still match a live token: the longest lifetime of any token the
    /// gateway accepts (its own, the REVA tokens it mints, the wopiserver's).
    horizon: u64,
    /// Logout `jti`s seen, when there is no store to remember them.
    jtis: moka::sync::Cache<String, ()>,
}

impl Control {
    pub fn new(c: &Config) -> Result<Arc<Self>, String> {
        let store = match &c.store {
            Some(s) => Some(Store::new(&s.url, s.password.as_ref())?),
            None => None,
        };
        let horizon = c
            .tokens
            .ttl
            .max(c.exchange.token_ttl)
            .max(Duration::from_secs(WOPISERVER_TOKEN_LIFE))
            .as_secs();
        // Down until the follower has reached a configured store.
        crate::metrics::metrics()
            .control
            .store_up
            .set(i64::from(store.is_none()));
        let replica = format!("{}:{}", hostname(), c.server.listen.port());
        Ok(Arc::new(Self {
            revocations: Arc::default(),
            activity: Activity::new(store.clone(), replica, c.tokens.idle),
            store,
            horizon,
            jtis: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }))
    }

    /// Keeps the revocation set current from the shared store (when there is one); runs for the
    /// process's life on the control runtime.
    pub fn spawn_followers(self: &Arc<Self>) {
        if let Some(store) = &self.store {
            tokio::spawn(store.clone().follow(self.revocations.clone()));
        }
    }

    /// Revokes `scope` for tokens whose login is at or before `before` (default: now). With a
    /// store, the entry is in effect only once the store has it: an operator is told when a
    /// revocation could not be shared, never left believing it was.
    pub async fn revoke(
        &self,
        scope: Scope,
        before: Option<u64>,
        source: &'static str,
    ) -> Result<Entry, Unavailable> {
        let before = before.unwrap_or_else(now);
        let e = Entry {
            scope,
            before,
            expires: before.saturating_add(self.horizon),
        };
        if let Some(store) = &self.store {
            store.add_revocation(&e).await?;
        }
        apply(&self.revocations, e.clone(), source);
        Ok(e)
    }

    /// Whether a token presenting `p` is revoked; `kind` names the token for the metrics.
    pub fn revoked(&self, p: &Presented<'_>, kind: &'static str) -> bool {
        let revoked = self.revocations.revoked(p);
        if revoked {
            crate::metrics::metrics()
                .control
                .revoked_requests
                .with_label_values(&[kind])
                .inc();
        }
        revoked
    }

    /// Records a logout token's `jti` until `expires`; `false` for a replay.
    pub async fn first_use_of_jti(&self, jti: &str, expires: u64) -> Result<bool, Unavailable> {
        if let Some(store) = &self.store {
            return store.first_use_of_jti(jti, expires).await;
        }
        let fresh = self.jtis.entry(jti.to_owned()).or_insert(()).is_fresh();
        Ok(fresh)
    }

    /// `None` without a store; else whether it is reachable now.
    pub fn store_up(&self) -> Option<bool> {
        self.store.as_ref().map(|s| s.is_up())
    }
}

/// This machine's name, for telling replicas apart in the session list.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Adds an entry to this replica's set, counted by scope and source.
pub(crate) fn apply(revocations: &Revocations, e: Entry, source: &'static str) {
    let scope = match e.scope {
        Scope::User(_) => "user",
        Scope::Sid(_) => "sid",
        Scope::File(_) => "file",
        Scope::Everything => "everything",
    };
    let m = &crate::metrics::metrics().control;
    if revocations.insert(e, now()) {
        m.revocations_added
            .with_label_values(&[scope, source])
            .inc();
    }
    m.revocations.set(revocations.len() as i64);
}
