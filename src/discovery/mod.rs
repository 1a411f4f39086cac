//! Office discovery cache (wopi.md §9.1): fetched at start, refreshed in the background, fetched
//! on demand when cold (single-flight through moka), and served stale when a refresh fails.

pub mod xml;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::OfficeApp;
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery of {app} unavailable: {reason}")]
    Unavailable { app: String, reason: String },
    #[error("no office app named {0:?}")]
    NoSuchApp(String),
    #[error("no configured office app opens {0:?} files")]
    Unsupported(String),
}

/// The app chosen to open one extension.
#[derive(Debug, Clone)]
pub struct AppChoice {
    pub app_name: String,
    pub urls: ActionUrls,
}

pub struct DiscoveryCache {
    sources: Vec<Arc<Source>>,
    /// Dotted extension → app names, most preferred first.
    preferences: std::collections::BTreeMap<String, Vec<String>>,
    cache: moka::future::Cache<String, Arc<Discovery>>,
}

impl DiscoveryCache {
    pub fn new(apps: &[OfficeApp]) -> Result<Self, String> {
        Self::with_preferences(apps, Default::default())
    }

    pub fn with_preferences(
        apps: &[OfficeApp],
        preferences: std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Self, String> {
        let sources = apps
            .iter()
            .map(|app| {
                Ok(Arc::new(Source {
                    http: http_client::client_pinned(
                        app.timeout,
                        app.timeout,
                        app.ca_pem.as_deref(),
                    )
                    .map_err(|e| format!("office app {:?}: {e}", app.name))?,
                    app: app.clone(),
                    last_failure: Mutex::new(None),
                    last_early: tokio::sync::Mutex::new(None),
                    failures: std::sync::atomic::AtomicU64::new(0),
                }))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            sources,
            preferences,
            cache: moka::future::Cache::new(64),
        })
    }

    async fn get(&self, source: &Source) -> Result<Arc<Discovery>, DiscoveryError> {
        let cached = self.cache.get(&source.app.name).await;
        crate::metrics::metrics().cache("discovery", cached.is_some());
        if let Some(d) = cached {
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

    /// The configured apps, in order.
    pub fn apps(&self) -> impl Iterator<Item = &OfficeApp> {
        self.sources.iter().map(|s| &s.app)
    }

    /// Failed refreshes of `app` since start.
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

    /// Apps in the order they are tried for `ext`: its preference list, then the configured order.
    fn preference_order(&self, ext: &str) -> Vec<&Arc<Source>> {
        let preferred = self
            .preferences
            .get(ext)
            .into_iter()
            .flatten()
            .filter_map(|n| self.source(n));
        let mut order: Vec<&Arc<Source>> = preferred.collect();
        for s in &self.sources {
            if !order.iter().any(|o| Arc::ptr_eq(o, s)) {
                order.push(s);
            }
        }
        order
    }

    /// The app chosen by default for `ext` among the loaded ones (no fetch).
    pub async fn default_app(&self, ext: &str) -> Option<String> {
        for s in self.preference_order(ext) {
            if self
                .cache
                .get(&s.app.name)
                .await
                .is_some_and(|d| d.extensions.contains_key(ext))
            {
                return Some(s.app.name.clone());
            }
        }
        None
    }

    /// Loaded discoveries in configured order, with their app names.
    pub async fn loaded(&self) -> Vec<(String, Arc<Discovery>)> {
        let mut out = Vec::new();
        for source in &self.sources {
            if let Some(d) = self.cache.get(&source.app.name).await {
                out.push((source.app.name.clone(), d));
            }
        }
        out
    }

    /// Every known extension with the first configured app that opens it (apps not loaded are
    /// skipped).
    pub async fn extension_map(&self) -> std::collections::BTreeMap<String, (String, ActionUrls)> {
        let mut out = std::collections::BTreeMap::new();
        for (app, d) in self.loaded().await {
            for (ext, urls) in &d.extensions {
                out.entry(ext.clone())
                    .or_insert_with(|| (app.clone(), urls.clone()));
            }
        }
        out
    }

    /// Refreshes each app on its own interval, forever. Every app's loop runs inside this one
    /// future, so aborting its task (a reload replacing this cache) stops them all and lets the
    /// cache go; a loop spawned as a task of its own would keep the replaced cache alive and
    /// refreshing forever.
    pub async fn run_refresh_loop(self: Arc<Self>) {
        let loops = self.sources.iter().map(|source| {
            let this = &self;
            async move {
                let mut tick = tokio::time::interval(source.app.refresh);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick fires at once; start-up has just fetched.
                tick.tick().await;
                loop {
                    tick.tick().await;
                    this.refresh(source).await;
                }
            }
        });
        futures_util::future::join_all(loops).await;
    }

    /// The first configured app (or the one named) that opens `ext`. 415 when none does, 503 when
    /// an app that might have could not be asked.
    pub async fn choose(
        &self,
        ext: &str,
        requested: Option<&str>,
    ) -> Result<AppChoice, DiscoveryError> {
        let candidates: Vec<&Arc<Source>> = match requested {
            Some(name) => {
                let found: Vec<_> = self
                    .sources
                    .iter()
                    .filter(|s| s.app.name.eq_ignore_ascii_case(name))
                    .collect();
                if found.is_empty() {
                    return Err(DiscoveryError::NoSuchApp(name.to_owned()));
                }
                found
            }
            None => self.preference_order(ext),
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
        Err(unavailable.unwrap_or_else(|| DiscoveryError::Unsupported(ext.to_owned())))
    }
}

/// A legacy wopiserver's `/wopi/cbox/endpoints`: `{".ext": {"view", "edit", "new"}}`.
fn parse_cbox_endpoints(body: &[u8]) -> Result<Discovery, FetchError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        view: Option<String>,
        edit: Option<String>,
        new: Option<String>,
    }
    let map: std::collections::BTreeMap<String, Entry> = serde_json::from_slice(body)
        .map_err(|e| FetchError::Invalid(format!("cbox endpoints: {e}")))?;
    let extensions: std::collections::HashMap<String, ActionUrls> = map
        .into_iter()
        .filter(|(ext, e)| ext.starts_with('.') && (e.view.is_some() || e.edit.is_some()))
        .map(|(ext, e)| {
            let urls = ActionUrls {
                view: e.view,
                edit: e.edit,
                editnew: e.new,
                ..Default::default()
            };
            (ext.to_ascii_lowercase(), urls)
        })
        .collect();
    if extensions.is_empty() {
        return Err(FetchError::Invalid(
            "cbox endpoints list no extension".into(),
        ));
    }
    Ok(Discovery {
        extensions,
        ..Default::default()
    })
}

/// Every fetch of an app's discovery, counted and timed by outcome.
async fn fetch(source: &Source) -> Result<Arc<Discovery>, FetchError> {
    let started = std::time::Instant::now();
    let result = fetch_once(source).await;
    let m = crate::metrics::metrics();
    let app = source.app.name.as_str();
    m.observe_upstream("office_discovery", "discovery", started.elapsed());
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => {
            m.upstream_error("office_discovery", e.kind());
            "failed"
        }
    };
    m.discovery_refreshes
        .with_label_values(&[app, outcome])
        .inc();
    result
}

async fn fetch_once(source: &Source) -> Result<Arc<Discovery>, FetchError> {
    let app = &source.app;
    let body =
        http_client::get_bounded(&source.http, &app.discovery_url, MAX_DISCOVERY_BYTES).await?;
    let d = match app.format {
        crate::config::DiscoveryFormat::CboxEndpoints => parse_cbox_endpoints(&body)?,
        crate::config::DiscoveryFormat::Discovery => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| FetchError::Invalid("discovery is not UTF-8".into()))?;
            xml::parse_with(text, app.net_zone.as_deref(), app.ui_language.as_deref())
                .map_err(|e| FetchError::Invalid(e.to_string()))?
        }
    };
    tracing::info!(app = %source.app.name, extensions = d.extensions.len(), "loaded office discovery");
    Ok(Arc::new(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiscoveryFormat, ProofMode};

    fn app(name: &str, url: &str) -> OfficeApp {
        OfficeApp {
            name: name.into(),
            discovery_url: url::Url::parse(url).unwrap(),
            refresh: Duration::from_secs(60),
            timeout: Duration::from_millis(500),
            proof_keys: ProofMode::Enforce,
            refetch_min: Duration::from_secs(60),
            format: DiscoveryFormat::Discovery,
            net_zone: None,
            ca_pem: None,
            ui_language: None,
        }
    }

    #[tokio::test]
    async fn a_stopped_refresh_loop_lets_the_cache_go() {
        let cache = Arc::new(
            DiscoveryCache::new(&[
                app("A", "http://127.0.0.1:1/hosting/discovery"),
                app("B", "http://127.0.0.1:1/hosting/discovery"),
            ])
            .unwrap(),
        );
        let task = tokio::spawn(cache.clone().run_refresh_loop());
        while Arc::strong_count(&cache) == 1 {
            tokio::task::yield_now().await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        // A reload aborts the loop of the cache it replaces: nothing may keep that cache.
        assert_eq!(Arc::strong_count(&cache), 1);
    }

    #[tokio::test]
    async fn failures_are_counted_and_cold_misses_fail_fast() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cache = DiscoveryCache::new(&[app(
            "Down",
            &format!("http://127.0.0.1:{port}/hosting/discovery"),
        )])
        .unwrap();
        cache.refresh_all().await;
        cache.refresh_all().await;
        assert_eq!(cache.failures("Down"), 2);
        let e = cache.choose(".odt", None).await.unwrap_err();
        assert!(matches!(e, DiscoveryError::Unavailable { .. }));
        // Within the cold-retry window the next miss does not fetch again, and still says 503.
        let started = Instant::now();
        assert!(matches!(
            cache.choose(".odt", None).await.unwrap_err(),
            DiscoveryError::Unavailable { .. }
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(
            cache.choose(".odt", Some("Nope")).await.unwrap_err(),
            DiscoveryError::NoSuchApp("Nope".into())
        );
    }

    #[test]
    fn cbox_endpoints_parse() {
        let d = parse_cbox_endpoints(br#"{".ODT": {"view": "v", "edit": "e", "new": "n"}, ".md": {"view": "m"}, "bad": {"view": "x"}}"#).unwrap();
        assert_eq!(d.extensions[".odt"].editnew.as_deref(), Some("n"));
        assert_eq!(d.extensions[".md"].edit, None);
        assert!(!d.extensions.contains_key("bad"));
        assert!(parse_cbox_endpoints(b"{}").is_err());
        assert!(parse_cbox_endpoints(b"<xml/>").is_err());
    }
}
