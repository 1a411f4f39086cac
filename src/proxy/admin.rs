//! The admin listener: `/metrics` for Prometheus, `/healthz` (the process answers) and `/readyz`
//! (every dependency a request needs is usable now). Nothing is proxied from here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use serde::Serialize;
use url::Url;

use super::respond;
use crate::auth::JwksSource;
use crate::discovery::DiscoveryCache;
use crate::error::{ApiError, ErrorCode};
use crate::reva::RevaClient;

pub struct AdminService {
    pub jwks: Arc<JwksSource>,
    pub discovery: Arc<DiscoveryCache>,
    pub reva: RevaClient,
    pub wopiserver_url: Url,
    pub http: reqwest::Client,
    /// Deadline of each readiness probe.
    pub probe_timeout: Duration,
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
}

/// The wopiserver's index page reports its own view of its storage (cs3-wopiserver.md §10).
fn wopiserver_health(status: u16, body: &str) -> Result<String, String> {
    if status != 200 {
        return Err(format!("GET /wopi answered {status}"));
    }
    match body.split("Health status:").nth(1).map(str::trim_start) {
        Some(s) if s.starts_with("FAIL") => Err("reports Health status: FAIL".into()),
        Some(s) if s.starts_with("Warning") => Ok("reports Health status: Warning".into()),
        Some(_) => Ok("reports Health status: OK".into()),
        // Before v10.0.0 the page carries no status line; answering at all is the signal.
        None => Ok("answers".into()),
    }
}

impl AdminService {
    async fn readiness(&self) -> Readiness {
        let mut checks = Vec::new();
        checks.push(match self.jwks.current() {
            Some(k) if !k.is_empty() => Check {
                name: "jwks".into(),
                ok: true,
                detail: format!("{} keys", k.len()),
            },
            _ => Check {
                name: "jwks".into(),
                ok: false,
                detail: "identity provider keys not loaded".into(),
            },
        });
        let loaded = self.discovery.loaded().await;
        for app in self.discovery.apps() {
            let ok = loaded.iter().any(|(name, _)| name == &app.name);
            checks.push(Check {
                name: format!("discovery:{}", app.name),
                ok,
                detail: if ok { "loaded" } else { "not loaded" }.into(),
            });
        }
        let reva = tokio::time::timeout(self.probe_timeout, self.reva.probe());
        let wopi =
            tokio::time::timeout(self.probe_timeout, async {
                let url = self
                    .wopiserver_url
                    .join("wopi")
                    .map_err(|e| e.to_string())?;
                let resp =
                    self.http.get(url).send().await.map_err(|e| {
                        crate::http_client::FetchError::from_reqwest(&e).to_string()
                    })?;
                let status = resp.status().as_u16();
                // The index page is small; bound what is read of it anyway.
                let mut resp = resp;
                let body = crate::http_client::read_bounded(&mut resp, 64 * 1024)
                    .await
                    .map_err(|e| e.to_string())?;
                wopiserver_health(status, &String::from_utf8_lossy(&body))
            });
        let (reva, wopi) = tokio::join!(reva, wopi);
        checks.push(match reva {
            Ok(Ok(())) => Check {
                name: "reva".into(),
                ok: true,
                detail: "answers".into(),
            },
            Ok(Err(e)) => Check {
                name: "reva".into(),
                ok: false,
                detail: e.to_string(),
            },
            Err(_) => Check {
                name: "reva".into(),
                ok: false,
                detail: "timed out".into(),
            },
        });
        checks.push(match wopi {
            Ok(Ok(detail)) => Check {
                name: "wopiserver".into(),
                ok: true,
                detail,
            },
            Ok(Err(detail)) => Check {
                name: "wopiserver".into(),
                ok: false,
                detail,
            },
            Err(_) => Check {
                name: "wopiserver".into(),
                ok: false,
                detail: "timed out".into(),
            },
        });
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

pub struct AdminCtx {
    started: Instant,
}

#[async_trait::async_trait]
impl ProxyHttp for AdminService {
    type CTX = AdminCtx;

    /// None: pingora adds a (disabled) response compression module by default, which still
    /// runs its hooks on every request; the gateway compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> AdminCtx {
        AdminCtx {
            started: Instant::now(),
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        _: &mut AdminCtx,
    ) -> pingora::Result<bool> {
        let req = session.req_header();
        let id = "admin";
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            let e = ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed");
            respond::error(session, &e, id).await?;
            return Ok(true);
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
                let e = ApiError::new(ErrorCode::NotFound, "no such endpoint");
                respond::error(session, &e, id).await?;
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _: &mut Session,
        _: &mut AdminCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // request_filter answers everything; reaching here is a bug, never a proxy.
        Err(pingora::Error::new(pingora::ErrorType::InternalError))
    }

    async fn logging(&self, session: &mut Session, _: Option<&pingora::Error>, ctx: &mut AdminCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        tracing::debug!(
            target: "wopigate::access",
            listener = "admin",
            path = %session.req_header().uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::wopiserver_health;

    #[test]
    fn wopiserver_index_health_line() {
        assert!(wopiserver_health(200, "<p>Health status: OK</p>").is_ok());
        assert!(wopiserver_health(200, "<p>Health status: FAIL</p>").is_err());
        assert!(wopiserver_health(200, "Health status: Warning").is_ok());
        assert!(wopiserver_health(200, "<html>old</html>").is_ok());
        assert!(wopiserver_health(502, "").is_err());
    }
}
