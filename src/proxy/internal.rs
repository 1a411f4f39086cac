//! The internal listener's `ProxyHttp` (cs3-wopiserver.md §14.1): source networks checked first,
//! legacy bearers validated and replaced by the IOP secret, legacy `/wopi/iop/open` translated,
//! `/wopi/cbox/endpoints` answered from discovery. Nothing else is served.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::balance::{Attempt, Pool};
use super::{Listener, Pinned, headers, respond};
use crate::config::LegacyOpenMode;
use crate::discovery::DiscoveryCache;
use crate::error::{ApiError, ErrorCode};
use crate::iop::{LegacyCallers, LegacyOpen, cbox_endpoints, parse_params};
use crate::secret::Secret;

pub struct InternalGateway {
    pub allow: Vec<ipnet::IpNet>,
    pub callers: LegacyCallers,
    pub iop_secret: Secret,
    pub legacy_open: Arc<LegacyOpen>,
    pub legacy_open_mode: LegacyOpenMode,
    pub discovery: Arc<DiscoveryCache>,
    pub pool: Arc<Pool>,
    /// Load balancers whose forwarded headers are believed (`server.trusted_proxies`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Check `allow` against the forwarded client (`internal.allow_forwarded`) instead of the
    /// peer.
    pub allow_forwarded: bool,
    /// Keeps this configuration generation counted while the service lives.
    pub generation: Arc<crate::metrics::GenerationAlive>,
}

pub struct InternalCtx {
    request_id: String,
    client: super::client::Client,
    started: std::time::Instant,
    route: InternalRoute,
    attempt: Attempt,
    _in_flight: crate::drain::InFlight,
}

async fn text(session: &mut Session, status: u16, body: &str) -> pingora::Result<()> {
    let mut h = ResponseHeader::build(status, Some(3))?;
    h.insert_header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true)
        .await
}

/// What an internal request is, in the order of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InternalRoute {
    /// The source address is not in `internal.allow`.
    RefusedSource,
    /// The bearer is neither the IOP secret nor (legacy) the REVA secret.
    RefusedCaller,
    CboxEndpoints,
    /// Legacy `/wopi/iop/open`, translated here.
    IopOpen,
    /// Any other `/wopi/iop/*`, proxied with the IOP secret.
    IopProxy,
    NotFound,
}

impl InternalRoute {
    /// Closed label for logs and metrics.
    fn label(self) -> &'static str {
        match self {
            Self::RefusedSource | Self::RefusedCaller => "refused",
            Self::CboxEndpoints => "cbox_endpoints",
            Self::IopOpen => "iop_open",
            Self::IopProxy => "iop_proxy",
            Self::NotFound => "not_found",
        }
    }
}

impl InternalGateway {
    /// The peer's address is checked, unless the forwarded client is asked for.
    fn allowed(&self, session: &Session, client: &super::client::Client) -> bool {
        let source = if self.allow_forwarded {
            client.addr
        } else {
            headers::client_ip(session)
        };
        source.is_some_and(|ip| self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// What the request is, in the order of the checks: source network, path, caller.
    fn classify(&self, session: &Session, client: &super::client::Client) -> InternalRoute {
        if !self.allowed(session, client) {
            return InternalRoute::RefusedSource;
        }
        let req = session.req_header();
        let path = req.uri.path();
        if path == "/wopi/cbox/endpoints" && req.method == http::Method::GET {
            return InternalRoute::CboxEndpoints;
        }
        if !path.starts_with("/wopi/iop/")
            || matches!(
                crate::wopi::route::classify(&req.method, path, &req.headers),
                crate::wopi::route::Route::BadPath(_)
            )
        {
            return InternalRoute::NotFound;
        }
        let authorization = req.headers.get(http::header::AUTHORIZATION);
        if !self.callers.accepts(authorization.map(|v| v.as_bytes())) {
            return InternalRoute::RefusedCaller;
        }
        if path == "/wopi/iop/open" && self.legacy_open_mode == LegacyOpenMode::Translate {
            return InternalRoute::IopOpen;
        }
        InternalRoute::IopProxy
    }

    /// Legacy `/wopi/iop/open`, translated onto `openinapp` and answered in its text format.
    async fn legacy_open(&self, session: &mut Session, request_id: &str) -> pingora::Result<()> {
        let req = session.req_header();
        let token = req.headers.get("tokenheader").and_then(|v| v.to_str().ok());
        let answer = match parse_params(req.uri.query().unwrap_or_default(), token) {
            Ok(p) => self.legacy_open.open(&p, request_id).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(body) => text(session, 200, &body).await,
            Err(e) => {
                let reason = match e.status {
                    401 => "not_authorized",
                    404 => "not_found",
                    400 => "bad_request",
                    _ => "internal",
                };
                crate::metrics::metrics()
                    .open_failures
                    .with_label_values(&["iop_open", reason])
                    .inc();
                text(session, e.status, e.text).await
            }
        }
    }
}

/// The internal listener: each hook runs on the generation its request was pinned to.
#[async_trait]
impl ProxyHttp for Listener<InternalGateway> {
    type CTX = Pinned<InternalGateway, InternalCtx>;

    /// None: pingora adds a (disabled) response compression module by default, which still
    /// runs its hooks on every request; the gateway compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Self::CTX {
        self.pin(InternalCtx {
            request_id: String::new(),
            client: Default::default(),
            started: std::time::Instant::now(),
            route: InternalRoute::NotFound,
            attempt: Attempt::default(),
            _in_flight: crate::drain::InFlight::enter("internal"),
        })
    }

    async fn request_filter(&self, s: &mut Session, c: &mut Self::CTX) -> pingora::Result<bool> {
        c.generation.request_filter(s, &mut c.req).await
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        c: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let path = session.req_header().uri.path();
        c.req.attempt.peer(&c.generation.pool, path).await
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        c: &mut Self::CTX,
        e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        c.req.attempt.connect_failed(&c.generation.pool, e)
    }

    async fn upstream_request_filter(
        &self,
        s: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        c: &mut Self::CTX,
    ) -> pingora::Result<()> {
        c.generation
            .upstream_request_filter(s, upstream_request, &c.req)
    }

    fn request_summary(&self, session: &Session, c: &Self::CTX) -> String {
        super::access_log::summary("internal", session, &c.req.request_id)
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, c: &mut Self::CTX) {
        let ctx = &c.req;
        let entry = super::access_log::Entry {
            listener: "internal",
            request_id: &ctx.request_id,
            client: ctx.client.addr,
            route: ctx.route.label(),
            operation: None,
            app: None,
            started: ctx.started,
            upstream_took: None,
        };
        super::access_log::record(session, e, &entry);
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        c: &mut Self::CTX,
    ) -> FailToProxy {
        super::failure::answer_failure(session, e, &c.req.request_id).await
    }
}

/// The phases of one generation, called by the listener with the request's own state.
impl InternalGateway {
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut InternalCtx,
    ) -> pingora::Result<bool> {
        ctx.request_id = super::headers::new_request_id();
        ctx.client = headers::client_of(session, &self.trusted_proxies);
        ctx.route = self.classify(session, &ctx.client);
        match ctx.route {
            InternalRoute::IopProxy => return Ok(false),
            InternalRoute::RefusedSource => {
                let e = ApiError::new(ErrorCode::Forbidden, "source address not allowed");
                respond::error(session, &e, &ctx.request_id).await?;
            }
            InternalRoute::RefusedCaller => text(session, 401, "Client not authorized").await?,
            InternalRoute::CboxEndpoints => {
                let body = cbox_endpoints(&self.discovery).await;
                respond::json(session, 200, body, &ctx.request_id, &[]).await?;
            }
            InternalRoute::IopOpen => self.legacy_open(session, &ctx.request_id).await?,
            InternalRoute::NotFound => {
                let e = ApiError::no_such_endpoint();
                respond::error(session, &e, &ctx.request_id).await?;
            }
        }
        Ok(true)
    }

    fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &InternalCtx,
    ) -> pingora::Result<()> {
        // The caller's bearer (possibly the REVA secret) never leaves: only the IOP secret does.
        upstream_request.remove_header(&http::header::AUTHORIZATION);
        upstream_request.insert_header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", self.iop_secret.expose()),
        )?;
        headers::forward(
            session,
            upstream_request,
            &ctx.client,
            "http",
            false,
            &ctx.request_id,
            ctx.attempt.upstream(&self.pool),
        )
    }
}
