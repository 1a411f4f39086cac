//! The store several replicas share (Redis or Valkey): revocations, the `jti`s of back-channel
//! logouts. Every replica keeps a full copy of the revocation set in memory, loaded at start and
//! kept current by the store's pub/sub; after a lost connection it loads the whole set again, so
//! nothing published while it was away is missed. The request path never waits on the store.
//!
//! Keys (prefix `wopigate:`): `revocations` (a hash: entry key → entry JSON), the channel
//! `revocations` (each new entry's JSON), `logout-jti:<jti>` (a replayed logout token),
//! `sessions` (session id → JSON) and `locks` (file id → JSON), written off the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::records::{Lock, Session};
use super::revocation::file_key_of as file_key;
use super::revocation::{Entry, Revocations};
use crate::secret::Secret;
use crate::tokens::now;

const REVOCATIONS: &str = "wopigate:revocations";
const JTI_PREFIX: &str = "wopigate:logout-jti:";
const SESSIONS: &str = "wopigate:sessions";
const LOCKS: &str = "wopigate:locks";
/// Every store call's deadline: an unreachable store answers "unavailable" this fast.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// A session unused this long is removed from the store (longer than any `idle_seconds`
/// would list it).
const STALE: u64 = 7 * 86_400;
/// How often a live subscription's store is pinged.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Between attempts to reach the store again.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, thiserror::Error)]
#[error("the shared store is unreachable: {0}")]
pub struct Unavailable(String);

/// A connection to the shared store.
pub struct Store {
    client: redis::Client,
    commands: ConnectionManager,
    /// Whether the subscription is live (the last known state of the store).
    up: AtomicBool,
}

impl Store {
    /// Connects lazily: start-up never waits for the store.
    pub fn new(url: &url::Url, password: Option<&Secret>) -> Result<Arc<Self>, String> {
        use redis::IntoConnectionInfo;
        let mut info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("store.url: {e}"))?;
        if let Some(p) = password {
            let settings = info.redis_settings().clone().set_password(p.expose());
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| format!("store.url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY);
        let commands = client
            .get_connection_manager_lazy(config)
            .map_err(|e| format!("store: {e}"))?;
        Ok(Arc::new(Self {
            client,
            commands,
            up: AtomicBool::new(false),
        }))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        crate::metrics::metrics()
            .control
            .store_up
            .set(i64::from(up));
    }

    /// Stores a revocation and tells every replica about it; fails when the store does not
    /// confirm it (the caller must not believe it shared).
    pub async fn add_revocation(&self, e: &Entry) -> Result<(), Unavailable> {
        let json = serde_json::to_string(e).map_err(|e| Unavailable(e.to_string()))?;
        let mut c = self.commands.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(REVOCATIONS, e.key(), &json)
            .ignore()
            .publish(REVOCATIONS, &json)
            .ignore();
        self.call(pipe.query_async::<()>(&mut c)).await
    }

    /// Records a back-channel logout token's `jti` until `expires` (Unix seconds); `false`
    /// when it was recorded before (a replay).
    pub async fn first_use_of_jti(&self, jti: &str, expires: u64) -> Result<bool, Unavailable> {
        let ttl = expires.saturating_sub(now()).max(1);
        let mut c = self.commands.clone();
        let key = format!("{JTI_PREFIX}{jti}");
        let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut c)
            .await;
        self.call(async { set }).await.map(|v| v.is_some())
    }

    /// Writes a session (best effort: the listing is advisory, enforcement never reads it).
    pub async fn put_session(&self, s: &Session) {
        let Ok(json) = serde_json::to_string(s) else {
            return;
        };
        let mut c = self.commands.clone();
        let _ = self
            .call(c.hset::<_, _, _, ()>(SESSIONS, &s.id, json))
            .await;
    }

    /// Every replica's sessions; those idle for good are removed on the way.
    pub async fn sessions(&self) -> Result<Vec<Session>, Unavailable> {
        self.all(SESSIONS, |s: &Session| s.last_seen + STALE > now())
            .await
    }

    pub async fn put_lock(&self, l: &Lock) {
        let Ok(json) = serde_json::to_string(l) else {
            return;
        };
        let mut c = self.commands.clone();
        let key = file_key(&l.file);
        let _ = self.call(c.hset::<_, _, _, ()>(LOCKS, key, json)).await;
    }

    pub async fn remove_lock(&self, file: &str) {
        let mut c = self.commands.clone();
        let key = file_key(file);
        let _ = self.call(c.hdel::<_, _, ()>(LOCKS, key)).await;
    }

    pub async fn locks(&self) -> Result<Vec<Lock>, Unavailable> {
        self.all(LOCKS, |l: &Lock| l.expires > now()).await
    }

    /// A hash's records that are `alive`; the others are deleted.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        hash: &str,
        alive: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, Unavailable> {
        let mut c = self.commands.clone();
        let raw: std::collections::HashMap<String, String> = self.call(c.hgetall(hash)).await?;
        let mut out = Vec::with_capacity(raw.len());
        let mut dead = Vec::new();
        for (k, v) in raw {
            match serde_json::from_str::<T>(&v) {
                Ok(t) if alive(&t) => out.push(t),
                _ => dead.push(k),
            }
        }
        if !dead.is_empty() {
            let _ = self.call(c.hdel::<_, _, ()>(hash, dead)).await;
        }
        Ok(out)
    }

    async fn call<T>(
        &self,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable("timed out".into())),
        }
    }

    /// Keeps `revocations` equal to the store's set for the process's life: subscribe, load
    /// everything, apply each published entry; on any loss, mark the store down (the last set
    /// stays enforced) and start over.
    pub async fn follow(self: Arc<Self>, revocations: Arc<Revocations>) {
        let mut first = true;
        loop {
            let why = match self.follow_once(&revocations).await {
                Ok(()) => "the subscription ended".to_owned(),
                Err(e) => e.to_string(),
            };
            if self.is_up() || first {
                tracing::warn!(reason = %why, "shared store unreachable; enforcing the last revocation set");
            }
            first = false;
            self.set_up(false);
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn follow_once(&self, revocations: &Revocations) -> Result<(), Unavailable> {
        let mut pubsub = self.call(self.client.get_async_pubsub()).await?;
        self.call(pubsub.subscribe(REVOCATIONS)).await?;
        // Subscribed before loading: an entry published in between arrives twice, never zero
        // times. The sets are merged, never replaced: a store that came back empty (restarted
        // without persistence) gets this replica's entries back instead of erasing them.
        let mut c = self.commands.clone();
        let all: std::collections::HashMap<String, String> =
            self.call(c.hgetall(REVOCATIONS)).await?;
        let now = now();
        let mut dead = Vec::new();
        for (key, json) in &all {
            match serde_json::from_str::<Entry>(json) {
                Ok(e) if e.expires > now => super::apply(revocations, e, "store"),
                _ => dead.push(key.clone()),
            }
        }
        if !dead.is_empty() {
            let _ = self.call(c.hdel::<_, _, ()>(REVOCATIONS, dead)).await;
        }
        for e in revocations.list(now) {
            if !all.contains_key(&e.key())
                && let Ok(json) = serde_json::to_string(&e)
            {
                self.call(c.hset_nx::<_, _, _, ()>(REVOCATIONS, e.key(), json))
                    .await?;
            }
        }
        if !self.is_up() {
            tracing::info!(
                revocations = revocations.len(),
                "shared store reachable; revocation set loaded"
            );
        }
        self.set_up(true);
        let mut messages = pubsub.on_message();
        // A silent partition never ends the subscription: the store is pinged meanwhile.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    let Ok(payload) = msg.get_payload::<String>() else { continue };
                    if let Ok(e) = serde_json::from_str::<Entry>(&payload) {
                        super::apply(revocations, e, "store");
                    }
                }
                _ = ping.tick() => {
                    self.call(redis::cmd("PING").query_async::<String>(&mut c)).await?;
                }
            }
        }
    }
}
