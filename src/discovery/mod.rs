//! Office discovery cache (wopi.md §9.1): fetched at start, refreshed in the background, fetched
//! on demand when cold (single-flight through moka), and served stale when a refresh fails.

pub mod xml;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::OfficeApp;
use crate::error::{ApiError, ErrorCode};
use crate::http_client::{self, FetchError};

pub use xml::{ActionUrls, Discovery};

/// Bound on a discovery document (Office's is ~400 KiB).
const MAX_DISCOVERY_BYTES: usize = 8 * 1024 * 1024;
/// After a failed cold fetch, further opens fail fast for this long instead of piling up.
const COLD_RETRY_AFTER: Duration = Duration::from_secs(5);

struct Source {
    app: OfficeApp,
    http: reqwest::Client,
    last_failure: Mutex<Option<Instant>>,
    /// When the last early refetch ran; the lock makes concurrent callers share it.
    last_early: tokio::sync::Mutex<Option<Instant>>,
    failures: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery of {app} unavailable: {reason}")]
    Unavailable { app: String, reason: String },
}

/// The app chosen to open one extension.
#[derive(Debug, Clone)]
pub struct AppChoice {
    pub app_name: String,
    pub urls: ActionUrls,
}

pub struct DiscoveryCache {
    sources: Vec<Arc<Source>>,
    cache: moka::future::Cache<String, Arc<Discovery>>,
}

impl DiscoveryCache {
    pub fn new(apps: &[OfficeApp]) -> Self {
        let sources = apps
            .iter()
            .map(|app| {
                Arc::new(Source {
                    http: http_client::client(app.timeout, app.timeout),
                    app: app.clone(),
                    last_failure: Mutex::new(None),
                    last_early: tokio::sync::Mutex::new(None),
                    failures: std::sync::atomic::AtomicU64::new(0),
                })
            })
            .collect();
        Self {
            sources,
            cache: moka::future::Cache::new(64),
        }
    }

    pub fn app_names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.app.name.as_str())
    }

    /// Cached discovery of `app`, or `None` if it was never loaded.
    pub async fn cached(&self, app: &str) -> Option<Arc<Discovery>> {
        self.cache.get(app).await
    }

    async fn get(&self, source: &Source) -> Result<Arc<Discovery>, DiscoveryError> {
        if let Some(d) = self.cache.get(&source.app.name).await {
            return Ok(d);
        }
        let unavailable = |reason: String| DiscoveryError::Unavailable {
            app: source.app.name.clone(),
            reason,
        };
        let failed_recently = source
            .last_failure
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|t| t.elapsed() < COLD_RETRY_AFTER);
        if failed_recently {
            return Err(unavailable("recent fetch failed".into()));
        }
        self.cache
            .try_get_with(source.app.name.clone(), fetch(source))
            .await
            .map_err(|e| {
                if let Ok(mut g) = source.last_failure.lock() {
                    *g = Some(Instant::now());
                }
                unavailable(e.to_string())
            })
    }

    /// Refetches every app now; failures keep the previous copy.
    pub async fn refresh_all(&self) {
        for source in &self.sources {
            self.refresh(source).await;
        }
    }

    async fn refresh(&self, source: &Source) {
        match fetch(source).await {
            Ok(d) => {
                self.cache.insert(source.app.name.clone(), d).await;
                if let Ok(mut g) = source.last_failure.lock() {
                    *g = None;
                }
            }
            Err(e) => {
                source
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(app = %source.app.name, error = %e, "discovery refresh failed; serving the last good copy");
            }
        }
    }

    /// Failed refreshes of `app` since start (ready for a metric).
    pub fn failures(&self, app: &str) -> u64 {
        self.source(app)
            .map_or(0, |s| s.failures.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn source(&self, app: &str) -> Option<&Arc<Source>> {
        self.sources
            .iter()
            .find(|s| s.app.name.eq_ignore_ascii_case(app))
    }

    /// The configured app named `app` (case-insensitive).
    pub fn app(&self, app: &str) -> Option<&OfficeApp> {
        self.source(app).map(|s| &s.app)
    }

    /// Proof keys published by `app`, from the cache.
    pub async fn proof_keys(&self, app: &str) -> Option<Arc<crate::wopi::proof::ProofKeys>> {
        let s = self.source(app)?;
        self.cache.get(&s.app.name).await?.proof_keys.clone()
    }

    /// Refetches `app` now, unless that happened within its `refetch_min` (wopi.md §9.1: after a
    /// proof failure). Concurrent callers wait for one fetch. Returns whether a fetch ran.
    pub async fn refetch_early(&self, app: &str) -> bool {
        let Some(source) = self.source(app) else {
            return false;
        };
        let mut last = source.last_early.lock().await;
        if last.is_some_and(|t| t.elapsed() < source.app.refetch_min) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh(source).await;
        true
    }

    /// Every known extension with the first configured app that opens it (apps not loaded are
    /// skipped).
    pub async fn extension_map(&self) -> std::collections::BTreeMap<String, (String, ActionUrls)> {
        let mut out = std::collections::BTreeMap::new();
        for source in &self.sources {
            if let Some(d) = self.cache.get(&source.app.name).await {
                for (ext, urls) in &d.extensions {
                    out.entry(ext.clone())
                        .or_insert_with(|| (source.app.name.clone(), urls.clone()));
                }
            }
        }
        out
    }

    /// Refreshes each app on its own interval, forever.
    pub async fn run_refresh_loop(self: Arc<Self>) {
        let mut tasks = Vec::new();
        for source in self.sources.clone() {
            let this = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(source.app.refresh);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick fires at once; start-up has just fetched.
                tick.tick().await;
                loop {
                    tick.tick().await;
                    this.refresh(&source).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The first configured app (or the one named) that opens `ext`. 415 when none does, 503 when
    /// an app that might have could not be asked.
    pub async fn choose(&self, ext: &str, requested: Option<&str>) -> Result<AppChoice, ApiError> {
        let candidates: Vec<&Arc<Source>> = match requested {
            Some(name) => {
                let found: Vec<_> = self
                    .sources
                    .iter()
                    .filter(|s| s.app.name.eq_ignore_ascii_case(name))
                    .collect();
                if found.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("no office app named {name:?}"),
                    ));
                }
                found
            }
            None => self.sources.iter().collect(),
        };
        let mut unavailable = None;
        for source in candidates {
            match self.get(source).await {
                Ok(d) => {
                    if let Some(urls) = d.extensions.get(ext) {
                        return Ok(AppChoice {
                            app_name: source.app.name.clone(),
                            urls: urls.clone(),
                        });
                    }
                }
                Err(e) => unavailable = Some(e),
            }
        }
        Err(match unavailable {
            Some(e) => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            None => ApiError::new(
                ErrorCode::UnsupportedExtension,
                format!("no configured office app opens {:?} files", ext),
            ),
        })
    }
}

async fn fetch(source: &Source) -> Result<Arc<Discovery>, FetchError> {
    let body =
        http_client::get_bounded(&source.http, &source.app.discovery_url, MAX_DISCOVERY_BYTES)
            .await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| FetchError::Invalid("discovery is not UTF-8".into()))?;
    let d = xml::parse(text).map_err(|e| FetchError::Invalid(e.to_string()))?;
    tracing::info!(app = %source.app.name, extensions = d.extensions.len(), "loaded office discovery");
    Ok(Arc::new(d))
}
