//! Prometheus metrics. One process-wide registry, because every module records into it and the
//! process serves one scrape endpoint. Label values are always from small fixed sets or from the
//! configuration (office app names): never a file id, user, token or anything else a client
//! chooses, so a hostile client cannot grow the series count.

use std::sync::LazyLock;
use std::time::Duration;

mod control;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for request and upstream latency: 0.5 ms … 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests_in_flight: IntGaugeVec,
    pub http_requests: IntCounterVec,
    pub wopi_requests: IntCounterVec,
    pub wopi_duration: HistogramVec,
    pub wopi_request_bytes: IntCounterVec,
    pub wopi_response_bytes: IntCounterVec,
    pub opens: IntCounterVec,
    pub open_failures: IntCounterVec,
    pub token_validations: IntCounterVec,
    pub token_exchanges: IntCounterVec,
    /// Per wopiserver instance (label values: configured instance names only).
    pub instance_healthy: IntGaugeVec,
    pub instance_in_flight: IntGaugeVec,
    pub instance_queued: IntGaugeVec,
    pub instance_requests: IntCounterVec,
    pub instance_busy: IntCounterVec,
    pub instance_failovers: IntCounterVec,
    pub instance_ejections: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub cache_lookups: IntCounterVec,
    pub jwks_refreshes: IntCounterVec,
    pub jwks_keys: IntGauge,
    pub discovery_refreshes: IntCounterVec,
    pub proof_verdicts: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub tls_cert_not_after: IntGauge,
    /// Configuration generations still alive: 1, plus one per reload whose requests are still
    /// running. More, for long, is a leak.
    pub config_generations: IntGauge,
    /// Tasks alive on the control runtime (REVA channel, refreshes, reloads); set at scrape.
    pub control_tasks: IntGauge,
    /// Client connections open on the public and internal listeners.
    pub open_connections: IntGauge,
    /// Revocations, logouts, re-checks, the shared store, sessions and locks.
    pub control: control::ControlMetrics,
}

/// The control runtime, watched for [`Metrics::control_tasks`].
static CONTROL: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// Lets scrapes report the control runtime's task count.
pub fn watch_control_runtime(handle: tokio::runtime::Handle) {
    let _ = CONTROL.set(handle);
}

// The metric definitions below are constants: `expect` there can only fire on a programming
// error (a bad name, a duplicate), which the exposition unit test catches before any release.
#[allow(clippy::expect_used)]
fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

#[allow(clippy::expect_used)]
fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

#[allow(clippy::expect_used)]
fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        let r = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("wopigate_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        r.register(Box::new(build_info)).expect("unique metric");
        let requests_in_flight = IntGaugeVec::new(
            Opts::new(
                "wopigate_requests_in_flight",
                "Requests being handled now, by listener.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        r.register(Box::new(requests_in_flight.clone()))
            .expect("unique metric");
        let jwks_keys = gauge(
            &r,
            "wopigate_jwks_keys",
            "Usable keys in the identity provider's current key set.",
        );
        let tls_cert_not_after = gauge(
            &r,
            "wopigate_tls_certificate_not_after_timestamp_seconds",
            "Expiry of the public listener's certificate (Unix time); alert well before it.",
        );
        let config_generations = gauge(
            &r,
            "wopigate_config_generations",
            "Configuration generations alive (the current one and those finishing requests).",
        );
        let control_tasks = gauge(
            &r,
            "wopigate_control_tasks",
            "Tasks alive on the control runtime; steady unless something leaks.",
        );
        let open_connections = gauge(
            &r,
            "wopigate_open_connections",
            "Client connections open on the public and internal listeners (idle keep-alive included).",
        );
        // Labelled `wopiserver`, not `instance`: Prometheus sets `instance` to the scrape target.
        let instance_gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["wopiserver"]).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let instance_healthy = instance_gauge(
            "wopigate_wopiserver_instance_healthy",
            "1 while the wopiserver instance passes its health checks and is not ejected.",
        );
        let instance_in_flight = instance_gauge(
            "wopigate_wopiserver_instance_in_flight",
            "Requests holding one of the instance's concurrency slots now.",
        );
        let instance_queued = instance_gauge(
            "wopigate_wopiserver_instance_queued",
            "Requests waiting for one of the instance's concurrency slots now.",
        );
        Self {
            instance_healthy,
            instance_in_flight,
            instance_queued,
            instance_requests: counter(
                &r,
                "wopigate_wopiserver_instance_requests_total",
                "Requests sent to a wopiserver instance (proxied WOPI and openinapp).",
                &["wopiserver"],
            ),
            instance_busy: counter(
                &r,
                "wopigate_wopiserver_instance_busy_total",
                "Requests refused with 503 because the instance was at its concurrency cap.",
                &["wopiserver"],
            ),
            instance_failovers: counter(
                &r,
                "wopigate_wopiserver_instance_failovers_total",
                "Requests moved to another instance because this one refused the connection.",
                &["wopiserver"],
            ),
            instance_ejections: counter(
                &r,
                "wopigate_wopiserver_instance_ejections_total",
                "Times the instance was taken out of rotation (failed connect or health check).",
                &["wopiserver", "cause"],
            ),
            rate_limited: counter(
                &r,
                "wopigate_rate_limited_total",
                "Requests refused with 429, by scope (open, bootstrap, wopi) and key (user, client).",
                &["scope", "by"],
            ),
            open_connections,
            requests_in_flight,
            http_requests: counter(
                &r,
                "wopigate_http_requests_total",
                "Requests answered, by listener, route and status class.",
                &["listener", "route", "status_class"],
            ),
            wopi_requests: counter(
                &r,
                "wopigate_wopi_requests_total",
                "Proxied WOPI requests by operation, office app and status class.",
                &["operation", "app", "status_class"],
            ),
            wopi_duration: histogram(
                &r,
                "wopigate_wopi_request_duration_seconds",
                "Time from request start to the last byte sent, by WOPI operation and office app.",
                &["operation", "app"],
            ),
            wopi_request_bytes: counter(
                &r,
                "wopigate_wopi_request_bytes_total",
                "Request body bytes read from office apps, by WOPI operation and app.",
                &["operation", "app"],
            ),
            wopi_response_bytes: counter(
                &r,
                "wopigate_wopi_response_bytes_total",
                "Response body bytes sent to office apps, by WOPI operation and app.",
                &["operation", "app"],
            ),
            opens: counter(
                &r,
                "wopigate_opens_total",
                "Successful opens by API, office app and view mode.",
                &["api", "app", "view_mode"],
            ),
            open_failures: counter(
                &r,
                "wopigate_open_failures_total",
                "Failed opens by API and reason (the error code answered).",
                &["api", "reason"],
            ),
            token_validations: counter(
                &r,
                "wopigate_token_validations_total",
                "OIDC bearer token validations by outcome.",
                &["outcome"],
            ),
            token_exchanges: counter(
                &r,
                "wopigate_token_exchanges_total",
                "OIDC to REVA token exchanges by mode and outcome.",
                &["mode", "outcome"],
            ),
            cache_lookups: counter(
                &r,
                "wopigate_cache_lookups_total",
                "Cache lookups by cache and result (hit or miss).",
                &["cache", "result"],
            ),
            jwks_refreshes: counter(
                &r,
                "wopigate_jwks_refreshes_total",
                "Fetches of the identity provider's key set by outcome.",
                &["outcome"],
            ),
            jwks_keys,
            discovery_refreshes: counter(
                &r,
                "wopigate_discovery_refreshes_total",
                "Office discovery fetches by app and outcome.",
                &["app", "outcome"],
            ),
            proof_verdicts: counter(
                &r,
                "wopigate_proof_verdicts_total",
                "WOPI proof-key checks by office app and verdict.",
                &["app", "verdict"],
            ),
            upstream_duration: histogram(
                &r,
                "wopigate_upstream_request_duration_seconds",
                "Time until an upstream answered (headers for proxied WOPI), by upstream and call.",
                &["upstream", "call"],
            ),
            upstream_errors: counter(
                &r,
                "wopigate_upstream_errors_total",
                "Failed upstream calls by upstream and kind (unavailable, timeout, invalid, ...).",
                &["upstream", "kind"],
            ),
            config_reloads: counter(
                &r,
                "wopigate_config_reloads_total",
                "Configuration and certificate reloads by outcome.",
                &["outcome"],
            ),
            tls_cert_not_after,
            config_generations,
            control_tasks,
            control: control::ControlMetrics::register(&r),
            registry: r,
        }
    }

    /// The text exposition format served on `/metrics`.
    pub fn encode(&self) -> Vec<u8> {
        if let Some(h) = CONTROL.get() {
            self.control_tasks
                .set(i64::try_from(h.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    pub fn observe_upstream(&self, upstream: &str, call: &str, took: Duration) {
        self.upstream_duration
            .with_label_values(&[upstream, call])
            .observe(took.as_secs_f64());
        let _ = UPSTREAM_WAIT.try_with(|w| w.set(w.get() + took));
    }

    pub fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors
            .with_label_values(&[upstream, kind])
            .inc();
    }

    pub fn rate_limited(&self, scope: &str, by: &str) {
        self.rate_limited.with_label_values(&[scope, by]).inc();
    }

    pub fn cache(&self, cache: &str, hit: bool) {
        self.cache_lookups
            .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
            .inc();
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}

mod handles;

/// `2xx`, `4xx`, …; `none` when no response was written (client gone).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Held by every service of one configuration generation; the last one dropped takes the
/// generation off `wopigate_config_generations`.
pub struct GenerationAlive(());

impl GenerationAlive {
    pub fn new() -> std::sync::Arc<Self> {
        metrics().config_generations.inc();
        std::sync::Arc::new(Self(()))
    }
}

impl Drop for GenerationAlive {
    fn drop(&mut self) {
        metrics().config_generations.dec();
    }
}

tokio::task_local! {
    /// Time the current request has spent waiting on upstream calls (REVA, wopiserver, IdP,
    /// discovery); the calls of one request run one after another.
    static UPSTREAM_WAIT: std::cell::Cell<Duration>;
}

/// Runs `f` and returns its output with the time it spent waiting on upstreams, so the access
/// log of the gateway's own endpoints can tell its own time from its upstreams'.
pub async fn timing_upstreams<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    UPSTREAM_WAIT
        .scope(std::cell::Cell::new(Duration::ZERO), async {
            let out = f.await;
            (out, UPSTREAM_WAIT.with(std::cell::Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests;
