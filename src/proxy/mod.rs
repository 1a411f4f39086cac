//! The public listener's `ProxyHttp`. Each phase only dispatches: `request_filter` classifies
//! the request once ([`crate::wopi::route`]) and hands it to the module owning it — answers
//! served here return `Ok(true)` — and only `/wopi/files/*` reaches `upstream_peer`
//! (style.md principle 3).

pub mod access_log;
mod activity;
pub mod admin;
pub mod balance;
pub mod client;
pub mod conn;
mod ctx;
pub mod failure;
pub mod headers;
pub mod internal;
pub mod limits;
mod local;
pub mod pinned;
pub mod respond;
mod save_as;
pub mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::ErrorType;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::error::ApiError;
use crate::open::OpenService;

use crate::wopi::operation::WopiOperation;
use crate::wopi::route::{self, Route};
use crate::wopi_call::HeadChange;
pub use ctx::RequestCtx;
pub use pinned::{Listener, Pinned};
pub use upstream::Upstream;

pub struct Gateway {
    pub open: Arc<OpenService>,
    /// The proxied WOPI call: admission and the answer plan.
    pub wopi: crate::wopi_call::Flow,
    /// The wopiserver instances.
    pub pool: Arc<balance::Pool>,
    pub max_api_body_bytes: usize,
    pub limits: crate::config::Limits,
    /// Whether the listener terminates TLS (for `X-Forwarded-Proto`).
    pub tls: bool,
    /// Bootstrapper, ecosystem and containers; `None` when `[mobile]` is off.
    pub mobile_service: Option<Arc<crate::mobile::MobileService>>,
    /// Load balancers whose forwarded headers are believed (`server.trusted_proxies`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// External origin, no trailing slash (URLs in PutRelativeFile answers).
    pub public_url: String,
    /// `POST /oidc/backchannel-logout`; `None` while `[oidc] logout_clients` is empty.
    pub logout: Option<Arc<crate::backchannel::BackchannelLogout>>,
    /// Keeps this configuration generation counted while the service lives.
    pub generation: Arc<crate::metrics::GenerationAlive>,
}

impl Gateway {
    /// The per-client-address limit of the request's kind (429 + Retry-After over it).
    fn within_rate(&self, ctx: &RequestCtx) -> Result<(), ApiError> {
        use crate::rate::Scope;
        let scope = match ctx.route {
            Route::LegacyOpen | Route::AppOpen => Scope::Open,
            Route::Bootstrapper(_) => Scope::Bootstrap,
            Route::WopiFile(_) => Scope::Wopi,
            _ => return Ok(()),
        };
        let Some(addr) = ctx.client.addr else {
            return Ok(());
        };
        self.open
            .backends
            .rate_limits
            .client(scope, addr)
            .map_err(ApiError::rate_limited)
    }
}

/// The public listener: each hook runs on the generation its request was pinned to.
#[async_trait]
impl ProxyHttp for Listener<Gateway> {
    type CTX = Pinned<Gateway, RequestCtx>;

    /// None: pingora adds a (disabled) response compression module by default, which still
    /// runs its hooks on every request; the gateway compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Self::CTX {
        self.pin(RequestCtx::new())
    }

    async fn request_filter(&self, s: &mut Session, c: &mut Self::CTX) -> pingora::Result<bool> {
        c.generation.request_filter(s, &mut c.req).await
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        c: &mut Self::CTX,
    ) -> pingora::Result<()> {
        c.generation
            .request_body_filter(body, end_of_stream, &mut c.req)
    }

    async fn upstream_peer(
        &self,
        s: &mut Session,
        c: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        c.generation.upstream_peer(s, &mut c.req).await
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

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        s: &mut Session,
        e: Box<pingora::Error>,
        c: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        error_while_proxy(peer, s, e, &c.req, client_reused)
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

    async fn upstream_response_filter(
        &self,
        s: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        c: &mut Self::CTX,
    ) -> pingora::Result<()> {
        c.generation
            .upstream_response_filter(s, upstream_response, &mut c.req)
            .await
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        c: &mut Self::CTX,
    ) -> pingora::Result<Option<Duration>> {
        c.generation
            .response_body_filter(body, end_of_stream, &mut c.req)?;
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        c: &mut Self::CTX,
    ) -> FailToProxy {
        failure::answer_failure(session, e, &c.req.request_id).await
    }

    fn request_summary(&self, session: &Session, c: &Self::CTX) -> String {
        access_log::summary("", session, &c.req.request_id)
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, c: &mut Self::CTX) {
        let ctx = &c.req;
        let entry = access_log::Entry {
            listener: "public",
            request_id: &ctx.request_id,
            client: ctx.client.addr,
            route: ctx.route.label(),
            operation: ctx.route.operation(),
            app: ctx.app(),
            started: ctx.started,
            upstream_took: ctx.upstream_took,
        };
        access_log::record(session, e, &entry);
        c.generation.record_activity(session, ctx);
    }
}

/// After the connection was made, only reads are sent again (on a pooled connection found
/// dead); a request that changes a file or lock is never replayed.
fn error_while_proxy(
    peer: &HttpPeer,
    session: &mut Session,
    e: Box<pingora::Error>,
    ctx: &RequestCtx,
    client_reused: bool,
) -> Box<pingora::Error> {
    let mut e = e.more_context(format!("Peer: {peer}"));
    if balance::replay_allowed(ctx.route.operation()) && !session.as_ref().retry_buffer_truncated()
    {
        e.retry.decide_reuse(client_reused);
    } else {
        e.set_retry(false);
    }
    e
}

/// The phases of one generation, called by the listener with the request's own state.
impl Gateway {
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let req = session.req_header();
        ctx.request_id = headers::request_id_of(req);
        ctx.client = headers::client_of(session, &self.trusted_proxies);
        ctx.route = route::classify(&req.method, req.uri.path(), &req.headers);
        if let Err(e) = limits::within_limits(req, &self.limits) {
            respond::error(session, &e, &ctx.request_id).await?;
            return Ok(true);
        }
        // Bodies may pause this long between reads (slow POST), answers wait this long for a
        // client that does not read.
        session.set_read_timeout(Some(self.limits.body_read_timeout));
        session.set_write_timeout(Some(self.limits.send_timeout));
        if let Err(e) = self.within_rate(ctx) {
            respond::error(session, &e, &ctx.request_id).await?;
            return Ok(true);
        }
        let outcome = match ctx.route {
            Route::WopiFile(op) => {
                let head = session.req_header();
                let admitted = self.wopi.admit(head, op, &ctx.request_id).await;
                match admitted {
                    Ok(a) => {
                        ctx.wopi = Some(a);
                        if op == WopiOperation::PutRelativeFile
                            && let Some(save_as) = &self.wopi.save_as
                        {
                            return self.save_as(save_as, session, ctx).await;
                        }
                        return Ok(false);
                    }
                    Err(e) => Err(e),
                }
            }
            Route::Bootstrapper(_) | Route::MobileWopi(_) => {
                self.mobile(session, ctx).await?;
                return Ok(true);
            }
            Route::BackchannelLogout if self.logout.is_some() => {
                let reply = self.backchannel_logout(session).await;
                respond::reply(session, reply, &ctx.request_id).await?;
                return Ok(true);
            }
            _ => self.answer_locally(session, ctx).await,
        };
        match outcome {
            Ok(body) => respond::json(session, 200, body, &ctx.request_id, &[]).await?,
            Err(e) => respond::error(session, &e, &ctx.request_id).await?,
        }
        Ok(true)
    }

    /// Enforces the minimum body rate: after a grace period, a body arriving slower than
    /// `min_body_rate` is cut off (408) before it completes upstream.
    fn request_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        let started = *ctx.body_started.get_or_insert_with(Instant::now);
        if !end_of_stream && limits::too_slow(ctx.body_bytes, started.elapsed(), &self.limits) {
            return Err(pingora::Error::explain(
                ErrorType::ReadTimedout,
                "request body arrives below the minimum rate",
            )
            .into_down());
        }
        Ok(())
    }

    /// The instance serving the file, with a concurrency slot of its own (503 + Retry-After
    /// when every candidate is at its cap).
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let peer = ctx
            .attempt
            .peer(&self.pool, session.req_header().uri.path())
            .await?;
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(call) = ctx.wopi.as_ref().and_then(|w| w.gateway.as_ref()) {
            swap_upstream(call, upstream_request)?;
        }
        let proto = if self.tls { "https" } else { "http" };
        headers::forward(
            session,
            upstream_request,
            &ctx.client,
            proto,
            true,
            &ctx.request_id,
            ctx.attempt.upstream(&self.pool),
        )
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let operation = ctx.route.operation().unwrap_or(WopiOperation::Other);
        if let Some(started) = ctx.upstream_started {
            let took = started.elapsed();
            ctx.upstream_took = Some(took);
            crate::metrics::metrics().observe_upstream("wopiserver", operation.as_str(), took);
        }
        let Some(wopi) = ctx.wopi.as_mut() else {
            return Ok(());
        };
        match wopi
            .plan
            .on_head(upstream_response.status, &upstream_response.headers)
        {
            HeadChange::Keep => {}
            HeadChange::Ok200 => upstream_response.set_status(200)?,
            // Rewritten, the answer's length is known only once it is whole, so it goes out
            // chunked; held, the head, the body and the last chunk still leave in one send.
            HeadChange::Hold => {
                upstream_response.remove_header(&http::header::CONTENT_LENGTH);
                conn::hold_answer(session);
            }
        }
        if let Some(call) = &wopi.gateway {
            call.after_answer(
                operation,
                upstream_response.status,
                &upstream_response.headers,
            )
            .await;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        match ctx.wopi.as_mut() {
            Some(w) => w
                .plan
                .on_body(body, end_of_stream)
                .map_err(|e| pingora::Error::explain(ErrorType::InternalError, e.to_string())),
            None => Ok(()),
        }
    }
}

/// Points the upstream request at the wopiserver's inode and its token, and drops the gateway
/// token from `Authorization` (Office for the web repeats it there).
fn swap_upstream(
    call: &crate::wopi_call::GatewayCall,
    req: &mut pingora::http::RequestHeader,
) -> pingora::Result<()> {
    let Some(target) = call.upstream_target(req.uri.path(), req.uri.query().unwrap_or_default())
    else {
        return Ok(());
    };
    let uri = http::Uri::try_from(target).map_err(|_| {
        pingora::Error::explain(ErrorType::InternalError, "cannot build the upstream URI")
    })?;
    req.set_uri(uri);
    req.remove_header(&http::header::AUTHORIZATION);
    Ok(())
}
