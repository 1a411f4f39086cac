//! The admin listener: `/metrics` for Prometheus, `/healthz` (the process answers), `/readyz`
//! (every dependency a request needs is usable now) and, with an admin bearer configured, the
//! admin API under `/admin/` ([`crate::admin`]). Nothing is proxied from here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use serde::Serialize;

use super::{Listener, Pinned, respond};
use crate::auth::JwksSource;
use crate::discovery::DiscoveryCache;
use crate::error::{ApiError, ErrorCode};
use crate::reva::RevaClient;

pub struct AdminService {
    pub jwks: Arc<JwksSource>,
    pub discovery: Arc<DiscoveryCache>,
    pub reva: RevaClient,
    pub pool: Arc<super::balance::Pool>,
    pub http: reqwest::Client,
    /// Deadline of each readiness probe.
    pub probe_timeout: Duration,
    /// The admin API; `None` without `[admin] token_file`.
    pub api: Option<Arc<crate::admin::AdminApi>>,
    /// The shared store's state, for `/readyz`.
    pub control: Arc<crate::control::Control>,
    /// Keeps this configuration generation counted while the service lives.
    pub generation: Arc<crate::metrics::GenerationAlive>,
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
    /// What works less well than configured, without making the gateway unready: the
    /// shared store (revocations stay enforced from the last set; new ones are refused).
    degraded: Vec<Check>,
    /// Every wopiserver instance; the `wopiserver` check passes while one of them is ok.
    wopiserver_instances: Vec<InstanceState>,
}

/// One wopiserver instance as `/readyz` shows it.
#[derive(Serialize)]
struct InstanceState {
    name: String,
    /// Its health page answers healthy now.
    ok: bool,
    detail: String,
    /// The active checks' verdict (what routing uses).
    healthy: bool,
    /// Out of rotation after a refused connection.
    ejected: bool,
    in_flight: i64,
    queued: usize,
}

impl Check {
    fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

impl AdminService {
    async fn readiness(&self) -> Readiness {
        let mut checks = vec![self.keys_check()];
        checks.extend(self.discovery_checks().await);
        let reva = tokio::time::timeout(self.probe_timeout, self.reva.probe());
        let (reva, wopi) = tokio::join!(reva, self.instance_states());
        checks.push(match reva {
            Ok(Ok(())) => Check::new("reva", true, "answers"),
            Ok(Err(e)) => Check::new("reva", false, e.to_string()),
            Err(_) => Check::new("reva", false, "timed out"),
        });
        let ok = wopi.iter().filter(|x| x.ok).count();
        checks.push(Check::new(
            "wopiserver",
            ok > 0,
            match wopi.as_slice() {
                [one] => one.detail.clone(),
                all => format!("{ok} of {} instances ready", all.len()),
            },
        ));
        let degraded = match self.control.store_up() {
            Some(false) => vec![Check::new(
                "store",
                false,
                "unreachable: the last revocation set is enforced; new revocations are refused",
            )],
            _ => Vec::new(),
        };
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
            degraded,
            wopiserver_instances: wopi,
        }
    }

    fn keys_check(&self) -> Check {
        match self.jwks.current() {
            Some(k) if !k.is_empty() => Check::new("jwks", true, format!("{} keys", k.len())),
            _ => Check::new("jwks", false, "identity provider keys not loaded"),
        }
    }

    async fn discovery_checks(&self) -> Vec<Check> {
        let loaded = self.discovery.loaded().await;
        self.discovery
            .apps()
            .map(|app| {
                let ok = loaded.iter().any(|(name, _)| name == &app.name);
                let detail = if ok { "loaded" } else { "not loaded" };
                Check::new(format!("discovery:{}", app.name), ok, detail)
            })
            .collect()
    }

    /// Every wopiserver instance: its health page now, and what routing thinks of it.
    async fn instance_states(&self) -> Vec<InstanceState> {
        let pool = &self.pool;
        futures_util::future::join_all(pool.instances.list().iter().enumerate().map(
            |(i, x)| async move {
                let probe = tokio::time::timeout(
                    self.probe_timeout,
                    crate::wopiserver::health::probe(&self.http, &x.base),
                )
                .await;
                let (ok, detail) = match probe {
                    Ok(Ok(detail)) => (true, detail.to_owned()),
                    Ok(Err(detail)) => (false, detail),
                    Err(_) => (false, "timed out".to_owned()),
                };
                InstanceState {
                    name: x.name.clone(),
                    ok,
                    detail,
                    healthy: pool.healthy(i),
                    ejected: pool.instances.ejected(i),
                    in_flight: x.in_flight(),
                    queued: x.queued(),
                }
            },
        ))
        .await
    }
}

pub struct AdminCtx {
    started: Instant,
}

/// The admin listener: each request is answered by the generation it was pinned to.
#[async_trait::async_trait]
impl ProxyHttp for Listener<AdminService> {
    type CTX = Pinned<AdminService, AdminCtx>;

    /// None: pingora adds a (disabled) response compression module by default, which still
    /// runs its hooks on every request; the gateway compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Self::CTX {
        self.pin(AdminCtx {
            started: Instant::now(),
        })
    }

    async fn request_filter(&self, s: &mut Session, c: &mut Self::CTX) -> pingora::Result<bool> {
        c.generation.answer(s).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _: &mut Session,
        _: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        // request_filter answers everything; reaching here is a bug, never a proxy.
        Err(pingora::Error::new(pingora::ErrorType::InternalError))
    }

    async fn logging(&self, session: &mut Session, _: Option<&pingora::Error>, c: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::debug!(
            target: "wopigate::access",
            listener = "admin",
            path = %session.req_header().uri.path(),
            status,
            duration_ms = c.req.started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}

impl AdminService {
    /// Every admin request is answered here: metrics, liveness, readiness.
    async fn answer(&self, session: &mut Session) -> pingora::Result<()> {
        let req = session.req_header();
        let id = "admin";
        if req.uri.path().starts_with("/admin/") {
            return self.admin_api(session).await;
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            let e = ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed");
            return respond::error(session, &e, id).await;
        }
        match req.uri.path() {
            "/metrics" => {
                let body = crate::metrics::metrics().encode();
                respond::body(
                    session,
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body,
                )
                .await?;
            }
            "/healthz" => {
                respond::json(session, 200, br#"{"status":"alive"}"#.to_vec(), id, &[]).await?;
            }
            "/readyz" => {
                let r = self.readiness().await;
                let body = serde_json::to_vec(&r).unwrap_or_default();
                respond::json(session, if r.ready { 200 } else { 503 }, body, id, &[]).await?;
            }
            _ => {
                let e = ApiError::no_such_endpoint();
                respond::error(session, &e, id).await?;
            }
        }
        Ok(())
    }
}

/// Largest admin API request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

impl AdminService {
    /// `/admin/*`: absent (404) without an admin bearer configured.
    async fn admin_api(&self, session: &mut Session) -> pingora::Result<()> {
        let id = "admin";
        let Some(api) = &self.api else {
            return respond::error(session, &ApiError::no_such_endpoint(), id).await;
        };
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ADMIN_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    let e = ApiError::new(ErrorCode::PayloadTooLarge, "request body too large");
                    return respond::error(session, &e, id).await;
                }
                Ok(None) => break,
                Err(_) => {
                    let e = ApiError::new(ErrorCode::BadRequest, "could not read the body");
                    return respond::error(session, &e, id).await;
                }
            }
        }
        let req = session.req_header();
        let trace_id = uuid::Uuid::new_v4().to_string();
        let authorization = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let reply = api
            .serve(&crate::admin::AdminRequest {
                method: &req.method,
                path: req.uri.path(),
                query: req.uri.query(),
                authorization,
                body: &body,
                trace_id: &trace_id,
            })
            .await;
        respond::reply(session, reply, id).await
    }
}
