//! Who has which document open, and which WOPI locks are held: what the gateway sees on the
//! wire (every open, every proxied call, every Lock/Unlock answered 200). Each replica keeps
//! what it saw; with a shared store, it also writes there (a session at most every
//! [`WRITE_EVERY`], a lock at each change), off the request path, so the admin API of any
//! replica lists them all.
//!
//! A session is an access token in use: listed until unused for `tokens.idle_seconds`. A lock
//! lives 30 minutes unless refreshed (wopi.md §5), as on the wopiserver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use super::records::{LOCK_LIFE, Lock, Session, same_file};
use super::revocation::file_key_of as file_key;
use super::store::{Store, Unavailable};
use crate::tokens::now;
use crate::tokens::reva::UserClaim;

/// A session's last use is written to the store at most this often.
const WRITE_EVERY: u64 = 30;

/// What a request tells about its session.
pub struct Seen<'a> {
    /// The access token, or at least its last 32 characters: the session is known by them
    /// (and listed under a digest of them, never the token).
    pub token: &'a str,
    pub user: &'a str,
    pub file: &'a str,
    pub app: &'a str,
    pub view_mode: &'a str,
    pub instance: &'a str,
}

/// A lock change the wopiserver granted (a 200 to one of these operations).
pub enum LockChange<'a> {
    /// LOCK, REFRESH_LOCK, UNLOCK_AND_RELOCK: `lock_id` is held now.
    Held { lock_id: &'a str },
    /// UNLOCK.
    Released,
}

struct Slot {
    session: Mutex<Session>,
    written: AtomicU64,
}

/// Filters of the admin listings.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    pub user: Option<String>,
    pub file: Option<String>,
    pub app: Option<String>,
    pub instance: Option<String>,
}

impl Filter {
    fn keeps(&self, user: &str, file: &str, app: &str, instance: &str) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.user, user)
            && self.file.as_deref().is_none_or(|f| same_file(f, file))
            && ok(&self.app, app)
            && ok(&self.instance, instance)
    }
}

pub struct Activity {
    /// Sessions by the token's last characters (unique per token: the signature or seal).
    sessions: moka::sync::Cache<Box<str>, Arc<Slot>>,
    /// Locks by [`file_key`].
    locks: Mutex<HashMap<String, Lock>>,
    store: Option<Arc<Store>>,
    pub replica: String,
    idle: u64,
}

/// The part of a token a session is found by: its end (a JWT's signature, a gateway token's
/// seal), unique per token and cheap to hash on every request.
fn slot_key(token: &str) -> &str {
    let cut = token.len().saturating_sub(32);
    token.get(cut..).unwrap_or(token)
}

/// Sessions by office app (a configured app's name, or empty).
fn session_gauge(app: &str) -> prometheus::IntGauge {
    crate::metrics::metrics()
        .control
        .sessions
        .with_label_values(&[app])
}

/// The id a session is listed under: a digest of its key, so nothing of the token leaves the
/// process.
fn session_id(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

impl Activity {
    pub fn new(store: Option<Arc<Store>>, replica: String, idle: Duration) -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(idle)
                .eviction_listener(|_, slot: Arc<Slot>, _| {
                    if let Ok(s) = slot.session.lock() {
                        session_gauge(&s.app).dec();
                    }
                })
                .build(),
            locks: Mutex::default(),
            store,
            replica,
            idle: idle.as_secs(),
        }
    }

    /// A request of a session: recorded when new, its last use updated.
    pub fn seen(&self, s: &Seen<'_>) {
        let now = now();
        let key = slot_key(s.token);
        let slot = match self.sessions.get(key) {
            Some(slot) => slot,
            None => {
                let slot = Arc::new(Slot {
                    session: Mutex::new(Session {
                        id: session_id(key),
                        user: s.user.to_owned(),
                        file: s.file.to_owned(),
                        app: s.app.to_owned(),
                        view_mode: s.view_mode.to_owned(),
                        opened: now,
                        last_seen: now,
                        replica: self.replica.clone(),
                        instance: s.instance.to_owned(),
                    }),
                    written: AtomicU64::new(0),
                });
                self.sessions.insert(key.into(), slot.clone());
                session_gauge(s.app).inc();
                slot
            }
        };
        let snapshot = {
            let mut g = slot.session.lock().unwrap_or_else(|p| p.into_inner());
            g.last_seen = now;
            if !s.instance.is_empty() && g.instance != s.instance {
                g.instance = s.instance.to_owned();
            }
            let due = now >= slot.written.load(Ordering::Relaxed) + WRITE_EVERY;
            // An unreachable store is not written to: the sessions reach it once it is back.
            let up = self.store.as_ref().is_some_and(|s| s.is_up());
            (due && up).then(|| g.clone())
        };
        if let (Some(session), Some(store)) = (snapshot, &self.store) {
            slot.written.store(now, Ordering::Relaxed);
            let store = store.clone();
            tokio::spawn(async move { store.put_session(&session).await });
        }
    }

    /// A lock change the wopiserver granted, for the session `s`.
    pub fn lock_changed(&self, s: &Seen<'_>, holder: &UserClaim, change: LockChange<'_>) {
        let now = now();
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| l.expires > now);
        let written = match change {
            LockChange::Held { lock_id } => {
                let since = locks
                    .get(&file_key(s.file))
                    .filter(|l| l.lock_id == lock_id)
                    .map_or(now, |l| l.since);
                let lock = Lock {
                    file: s.file.to_owned(),
                    lock_id: lock_id.to_owned(),
                    holder: s.user.to_owned(),
                    session: session_id(slot_key(s.token)),
                    app: s.app.to_owned(),
                    since,
                    refreshed: now,
                    expires: now + LOCK_LIFE,
                    instance: s.instance.to_owned(),
                    holder_claim: holder.clone(),
                };
                locks.insert(file_key(s.file), lock.clone());
                Some(lock)
            }
            LockChange::Released => {
                locks.remove(&file_key(s.file));
                None
            }
        };
        self.count_locks(&locks);
        drop(locks);
        if let Some(store) = &self.store {
            let store = store.clone();
            let file = s.file.to_owned();
            tokio::spawn(async move {
                match written {
                    Some(lock) => store.put_lock(&lock).await,
                    None => store.remove_lock(&file).await,
                }
            });
        }
    }

    /// The lock on `file` the gateway saw granted, if still alive.
    pub async fn lock_on(&self, file: &str) -> Result<Option<Lock>, Unavailable> {
        Ok(self
            .locks(&Filter {
                file: Some(file.to_owned()),
                ..Filter::default()
            })
            .await?
            .into_iter()
            .next())
    }

    /// Forgets a lock released through the admin API.
    pub async fn forget_lock(&self, file: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&file_key(file));
        if let Some(store) = &self.store {
            store.remove_lock(file).await;
        }
    }

    /// Open sessions (every replica's, with a store), most recent first.
    pub async fn sessions(&self, f: &Filter) -> Result<Vec<Session>, Unavailable> {
        let now = now();
        let all = match &self.store {
            Some(store) => store.sessions().await?,
            None => self
                .sessions
                .iter()
                .map(|(_, slot)| {
                    slot.session
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                })
                .collect(),
        };
        let mut out: Vec<Session> = all
            .into_iter()
            .filter(|s| s.last_seen + self.idle > now)
            .filter(|s| f.keeps(&s.user, &s.file, &s.app, &s.instance))
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Locks held (every replica's, with a store), oldest first.
    pub async fn locks(&self, f: &Filter) -> Result<Vec<Lock>, Unavailable> {
        let now = now();
        let all = match &self.store {
            Some(store) => store.locks().await?,
            None => self
                .locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect(),
        };
        let mut out: Vec<Lock> = all
            .into_iter()
            .filter(|l| l.expires > now)
            .filter(|l| f.keeps(&l.holder, &l.file, &l.app, &l.instance))
            .collect();
        out.sort_by(|a, b| a.since.cmp(&b.since).then(a.file.cmp(&b.file)));
        Ok(out)
    }

    fn count_locks(&self, locks: &HashMap<String, Lock>) {
        let gauge = &crate::metrics::metrics().control.locks;
        gauge.reset();
        for l in locks.values() {
            gauge.with_label_values(&[l.app.as_str()]).inc();
        }
    }
}
