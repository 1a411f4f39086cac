//! The public listener's `ProxyHttp`: classify in `request_filter`, answer the open API locally,
//! and let only `/wopi/files/*` reach `upstream_peer` (style.md principle 3).

pub mod admin;
pub mod client_limits;
pub mod headers;
pub mod internal;
pub mod reloadable;
pub mod respond;
pub mod route;
pub mod wopi_files;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::ErrorType;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::error::{ApiError, ErrorCode};
use crate::open::{OpenRequest, OpenService, single_bearer};
use crate::wopiserver::ViewMode;
use route::Route;

/// Where proxied WOPI traffic goes, resolved once at start.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
    /// `host:port` sent as `Host`.
    pub authority: String,
    pub connect_timeout: Duration,
    /// Longest wait for the next byte from the wopiserver while proxying.
    pub read_timeout: Duration,
    /// Trusted CAs for an `https://` wopiserver; `None` = the platform's roots.
    pub ca: Option<Arc<[pingora::utils::tls::WrappedX509]>>,
    /// Client certificate for a wopiserver that requires mutual TLS.
    pub client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
}

impl Upstream {
    /// The TLS parts from the configured PEM (already validated at load).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Self {
        use pingora::utils::tls::{CertKey, WrappedX509, parse_x509};
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ders = |pem: &[u8]| -> Vec<Vec<u8>> {
            CertificateDer::pem_slice_iter(pem)
                .filter_map(Result::ok)
                .map(|c| c.to_vec())
                .collect()
        };
        if let Some(pem) = &tls.ca_pem {
            let certs: Vec<WrappedX509> = ders(pem)
                .into_iter()
                .map(|d| WrappedX509::new(d, parse_x509))
                .collect();
            if !certs.is_empty() {
                self.ca = Some(Arc::from(certs));
            }
        }
        if let Some((cert, key)) = &tls.identity_pem
            && let Ok(key) = PrivateKeyDer::from_pem_slice(key)
        {
            let chain = ders(cert);
            if !chain.is_empty() {
                self.client_cert = Some(Arc::new(CertKey::new(chain, key.secret_der().to_vec())));
            }
        }
        self
    }
}

pub struct Gateway {
    pub open: Arc<OpenService>,
    pub wopi_files: wopi_files::WopiFilesGuard,
    /// Turn the wopiserver's GetLock 404 on an unlocked file into the spec's 200.
    pub normalize_get_lock: bool,
    pub upstream: Upstream,
    pub max_api_body_bytes: usize,
    pub limits: crate::config::Limits,
    /// Whether the listener terminates TLS (for `X-Forwarded-Proto`).
    pub tls: bool,
    /// Office for iOS/Android flags for CheckFileInfo; `None` when `[mobile]` is off.
    pub mobile: Option<crate::wopi::rewrite::MobileFlags>,
    /// Bootstrapper, ecosystem and containers; `None` when `[mobile]` is off.
    pub mobile_service: Option<Arc<crate::mobile::MobileService>>,
}

/// A request with a gateway token, and the wopiserver token it is swapped for.
struct Wrapped {
    token: String,
    claims: crate::gwtoken::Claims,
    upstream: crate::secret::Secret,
}

/// A JSON answer held back until complete, to be rewritten for a gateway-token holder.
struct BodyRewrite {
    buf: Vec<u8>,
    put_relative: bool,
}

/// Larger answers are not a CheckFileInfo or PutRelativeFile JSON: refused, not passed through.
const MAX_REWRITE_BYTES: usize = 1024 * 1024;

/// The error answer for a failed proxy attempt; `None` when the client is gone.
pub(crate) fn fail_status(e: &pingora::Error) -> Option<ApiError> {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError => Some(ApiError::new(
            ErrorCode::Unavailable,
            "wopiserver unavailable",
        )),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &pingora::ErrorSource::Upstream =>
        {
            Some(ApiError::new(
                ErrorCode::UpstreamTimeout,
                "wopiserver did not answer in time",
            ))
        }
        ErrorType::HTTPStatus(code) => Some(ApiError::new(
            if *code == 413 {
                ErrorCode::PayloadTooLarge
            } else {
                ErrorCode::BadRequest
            },
            "invalid request",
        )),
        _ => match e.esource() {
            pingora::ErrorSource::Upstream => {
                Some(ApiError::new(ErrorCode::UpstreamError, "wopiserver error"))
            }
            pingora::ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => None,
                ErrorType::ReadTimedout => Some(ApiError::new(
                    ErrorCode::RequestTimeout,
                    "request body not received in time",
                )),
                _ => Some(ApiError::new(ErrorCode::BadRequest, "invalid request")),
            },
            _ => Some(ApiError::new(ErrorCode::Internal, "internal error")),
        },
    }
}

/// Both listeners' `fail_to_proxy`: count the upstream failure and answer with its JSON error
/// while nothing has been written yet.
pub(crate) async fn answer_failure(
    session: &mut Session,
    e: &pingora::Error,
    request_id: &str,
) -> FailToProxy {
    if let Some(kind) = upstream_error_kind(e) {
        crate::metrics::metrics().upstream_error("wopiserver", kind);
    }
    let mut written = 0;
    if let Some(api) = fail_status(e)
        && session.response_written().is_none()
        && respond::error(session, &api, request_id).await.is_ok()
    {
        written = api.status().as_u16();
    }
    FailToProxy {
        error_code: written,
        can_reuse_downstream: false,
    }
}

/// The wopiserver as a pingora peer with the configured deadlines.
pub(crate) fn upstream_peer(u: &Upstream) -> Box<HttpPeer> {
    let mut peer = HttpPeer::new(u.addr, u.tls, u.sni.clone());
    peer.options.connection_timeout = Some(u.connect_timeout);
    peer.options.total_connection_timeout = Some(u.connect_timeout);
    peer.options.read_timeout = Some(u.read_timeout);
    peer.options.write_timeout = Some(u.read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.ca = u.ca.clone();
    peer.client_cert_key = u.client_cert.clone();
    Box::new(peer)
}

/// The head-size limits (security.md P5): 414 for a long target, 431 for a large head.
pub(crate) fn within_limits(
    req: &pingora::http::RequestHeader,
    limits: &crate::config::Limits,
) -> Result<(), ApiError> {
    if req.raw_path().len() > limits.max_uri_bytes {
        return Err(ApiError::new(
            ErrorCode::UriTooLong,
            "request target too long",
        ));
    }
    let head_bytes = req.method.as_str().len()
        + req.raw_path().len()
        + 12
        + req
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_bytes > limits.max_header_bytes || req.headers.len() > limits.max_header_count {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            "request headers too large",
        ));
    }
    Ok(())
}

/// Bodies get `min_body_rate_after` to get going; after that they must average `min_body_rate`.
fn too_slow(bytes: u64, elapsed: Duration, limits: &crate::config::Limits) -> bool {
    limits.min_body_rate > 0
        && elapsed > limits.min_body_rate_after
        && (bytes as f64) < limits.min_body_rate as f64 * elapsed.as_secs_f64()
}

/// Per-request state.
pub struct RequestCtx {
    route: Route,
    /// A GetLock request (`POST` + `X-WOPI-Override: GET_LOCK`).
    get_lock: bool,
    request_id: String,
    started: Instant,
    /// The WOPI operation of a `/wopi/files/*` request (a fixed name).
    operation: &'static str,
    /// The configured office app the WOPI token belongs to.
    app: Option<String>,
    upstream_started: Option<Instant>,
    /// Time until the wopiserver's response headers arrived.
    upstream_took: Option<Duration>,
    wrapped: Option<Wrapped>,
    rewrite: Option<BodyRewrite>,
    /// Request body progress: when its first bytes came and how many so far (minimum rate).
    body_started: Option<Instant>,
    body_bytes: u64,
    _in_flight: crate::metrics::InFlight,
}

/// Records the outcome of an open on its metrics.
pub(crate) fn count_open(api: &str, outcome: Result<(&str, &str), &ApiError>) {
    let m = crate::metrics::metrics();
    match outcome {
        Ok((app, mode)) => m.opens.with_label_values(&[api, app, mode]).inc(),
        Err(e) => m
            .open_failures
            .with_label_values(&[api, e.code.as_str()])
            .inc(),
    }
}

fn query_params(
    query: Option<&str>,
) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

impl Gateway {
    /// The Office mobile endpoints, answered here from REVA.
    async fn mobile(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<bool> {
        let Some(service) = self.mobile_service.clone() else {
            let e = ApiError::new(ErrorCode::NotFound, "no such endpoint");
            respond::error(session, &e, &ctx.request_id).await?;
            return Ok(true);
        };
        let req = session.req_header();
        ctx.operation = crate::wopi::operation::mobile_operation(
            &req.method,
            req.uri.path(),
            req.headers
                .get("x-wopi-ecosystemoperation")
                .map(|v| v.as_bytes()),
        );
        let mreq = crate::mobile::MobileRequest {
            head: req,
            access_token: raw_query_token(req.uri.query()),
        };
        let answer = if ctx.route == Route::Bootstrapper {
            Ok(service.bootstrapper(&mreq).await)
        } else {
            service.wopi(&mreq).await
        };
        match answer {
            Ok(a) => {
                let extra: Vec<(&'static str, &str)> = a
                    .challenge
                    .as_deref()
                    .map(|c| vec![("WWW-Authenticate", c)])
                    .unwrap_or_default();
                respond::json(session, a.status, a.body, &ctx.request_id, &extra).await?
            }
            Err(e) => respond::error(session, &e, &ctx.request_id).await?,
        }
        Ok(true)
    }

    async fn read_form(&self, session: &mut Session) -> Result<Vec<(String, String)>, ApiError> {
        let is_form = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut body = BytesMut::new();
        loop {
            let chunk = session.read_request_body().await.map_err(|_| {
                ApiError::new(ErrorCode::BadRequest, "could not read the request body")
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.max_api_body_bytes {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body too large",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !is_form {
            return Ok(Vec::new());
        }
        Ok(url::form_urlencoded::parse(&body).into_owned().collect())
    }

    async fn open(&self, session: &mut Session, ctx: &RequestCtx) -> Result<Vec<u8>, ApiError> {
        let req = session.req_header();
        let bearer = single_bearer(
            req.headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
        )?
        .to_owned();
        let mut params: Vec<(String, String)> = query_params(req.uri.query())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let legacy = ctx.route == Route::LegacyOpen;
        if !legacy {
            params.extend(self.read_form(session).await?);
        }
        let get = |names: &[&str]| {
            params
                .iter()
                .find(|(k, _)| names.contains(&k.as_str()))
                .map(|(_, v)| v.as_str())
        };
        let (file_key, app_key, mode_key): (&[&str], &[&str], &[&str]) = if legacy {
            (&["fileId"], &["appName"], &["viewMode"])
        } else {
            (&["file_id"], &["app_name"], &["view_mode"])
        };
        let file_id = get(file_key).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("{} parameter missing", file_key[0]),
            )
        })?;
        let view_mode = match get(mode_key).filter(|m| !m.is_empty()) {
            Some(m) => Some(ViewMode::parse(m).ok_or_else(|| {
                ApiError::new(ErrorCode::BadRequest, format!("invalid {}", mode_key[0]))
            })?),
            None => None,
        };
        let api = if legacy { "legacy" } else { "app_open" };
        let result = self
            .open
            .open(&OpenRequest {
                bearer: &bearer,
                file_id,
                app_name: get(app_key).filter(|a| !a.is_empty()),
                view_mode,
                trace_id: &ctx.request_id,
            })
            .await
            .inspect_err(|e| count_open(api, Err(e)))?;
        count_open(api, Ok((&result.app_name, result.view_mode.as_str())));
        tracing::info!(request_id = %ctx.request_id, app = %result.app_name, view_mode = result.view_mode.as_str(), "opened");
        Ok(if legacy {
            result.legacy_json()
        } else {
            result.app_open_json()
        })
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            route: Route::NotFound,
            get_lock: false,
            request_id: String::new(),
            started: Instant::now(),
            operation: "",
            app: None,
            upstream_started: None,
            upstream_took: None,
            wrapped: None,
            rewrite: None,
            body_started: None,
            body_bytes: 0,
            _in_flight: crate::metrics::InFlight::enter("public"),
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let req = session.req_header();
        ctx.request_id = req
            .headers
            .get("x-request-id")
            .and_then(|v| headers::valid_request_id(v.as_bytes()))
            .map(str::to_owned)
            .unwrap_or_else(headers::new_request_id);
        ctx.route = route::classify(&req.method, req.uri.path());
        if let Err(e) = within_limits(req, &self.limits) {
            respond::error(session, &e, &ctx.request_id).await?;
            return Ok(true);
        }
        // Bodies may pause this long between reads (slow POST), answers wait this long for a
        // client that does not read.
        session.set_read_timeout(Some(self.limits.body_read_timeout));
        session.set_write_timeout(Some(self.limits.send_timeout));
        let req = session.req_header();
        let outcome = match &ctx.route {
            Route::WopiFile => {
                // WOPI never upgrades; an early-data upgrade is a smuggling vector (security.md P4).
                if req.headers.contains_key(http::header::UPGRADE) {
                    Err(ApiError::new(
                        ErrorCode::BadRequest,
                        "protocol upgrade is not allowed",
                    ))
                } else {
                    ctx.operation = crate::wopi::operation::operation(
                        &req.method,
                        req.uri.path(),
                        req.headers.get("x-wopi-override").map(|v| v.as_bytes()),
                        req.headers.contains_key("x-wopi-oldlock"),
                    );
                    ctx.get_lock = ctx.operation == "GetLock";
                    match self.wopi_files.check(req).await {
                        Ok(admitted) => {
                            ctx.app = admitted.app;
                            match admitted.gateway {
                                None => return Ok(false),
                                Some((token, claims)) => {
                                    match self
                                        .open
                                        .upstream_token(&token, &claims, &ctx.request_id)
                                        .await
                                    {
                                        Ok(upstream) => {
                                            ctx.wrapped = Some(Wrapped {
                                                token,
                                                claims,
                                                upstream,
                                            });
                                            return Ok(false);
                                        }
                                        Err(e) => Err(wopi_error(e)),
                                    }
                                }
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            }
            Route::Bootstrapper | Route::MobileWopi => {
                return self.mobile(session, ctx).await;
            }
            Route::LegacyOpen | Route::AppOpen => {
                let (outcome, waited) =
                    crate::metrics::timing_upstreams(self.open(session, ctx)).await;
                ctx.upstream_took = Some(waited);
                outcome
            }
            Route::AppList => Ok(crate::open::app_list::app_list(&self.open.discovery).await),
            Route::Internal | Route::NotFound => {
                Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
            }
            Route::MethodNotAllowed => Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed",
            )),
            Route::BadPath(reason) => Err(ApiError::new(ErrorCode::BadRequest, *reason)),
        };
        match outcome {
            Ok(body) => respond::json(session, 200, body, &ctx.request_id, &[]).await?,
            Err(e) => respond::error(session, &e, &ctx.request_id).await?,
        }
        Ok(true)
    }

    /// Enforces the minimum body rate: after a grace period, a body arriving slower than
    /// `min_body_rate` is cut off (408) before it completes upstream.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        let started = *ctx.body_started.get_or_insert_with(Instant::now);
        if !end_of_stream && too_slow(ctx.body_bytes, started.elapsed(), &self.limits) {
            return Err(pingora::Error::explain(
                ErrorType::ReadTimedout,
                "request body arrives below the minimum rate",
            )
            .into_down());
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        ctx.upstream_started = Some(Instant::now());
        Ok(upstream_peer(&self.upstream))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(w) = &ctx.wrapped {
            swap_token(upstream_request, w)?;
        }
        let client_ip = headers::client_ip(session).map(|ip| ip.to_string());
        let host = session
            .req_header()
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        headers::apply(
            upstream_request,
            &headers::Forwarding {
                client_ip,
                proto: if self.tls { "https" } else { "http" },
                host: host.as_deref(),
                request_id: &ctx.request_id,
                upstream_authority: &self.upstream.authority,
            },
        )
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(started) = ctx.upstream_started {
            let took = started.elapsed();
            ctx.upstream_took = Some(took);
            crate::metrics::metrics().observe_upstream("wopiserver", ctx.operation, took);
        }
        // wopiserver deviation (cs3-wopiserver.md §9.1): GetLock on an unlocked file answers 404
        // with an empty X-WOPI-Lock; the WOPI spec wants 200 with that empty header.
        if self.normalize_get_lock
            && ctx.get_lock
            && upstream_response.status == http::StatusCode::NOT_FOUND
            && upstream_response
                .headers
                .get("x-wopi-lock")
                .is_some_and(|v| v.is_empty())
        {
            upstream_response.set_status(200)?;
        }
        // JSON answers that embed wopiserver tokens are rewritten whole for gateway-token holders.
        if ctx.wrapped.is_some()
            && upstream_response.status == http::StatusCode::OK
            && matches!(ctx.operation, "CheckFileInfo" | "PutRelativeFile")
        {
            upstream_response.remove_header(&http::header::CONTENT_LENGTH);
            // Its length is known only once it is whole, so it goes out chunked; held, the head,
            // the body and the last chunk still leave in one send instead of three.
            if let Some(stream) = session.stream() {
                client_limits::hold_answer(stream);
            }
            ctx.rewrite = Some(BodyRewrite {
                buf: Vec::new(),
                put_relative: ctx.operation == "PutRelativeFile",
            });
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        let (Some(rw), Some(w)) = (ctx.rewrite.as_mut(), ctx.wrapped.as_ref()) else {
            return Ok(None);
        };
        if let Some(chunk) = body.take() {
            if rw.buf.len() + chunk.len() > MAX_REWRITE_BYTES {
                return Err(pingora::Error::explain(
                    ErrorType::InternalError,
                    "wopiserver JSON answer too large to rewrite",
                ));
            }
            rw.buf.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            return Ok(None);
        }
        let rewritten = if rw.put_relative {
            let wrap = self.open.wrap.as_ref();
            crate::wopi::rewrite::put_relative(&rw.buf, &w.claims, |c| {
                wrap.map(|k| k.keys.issue(c)).unwrap_or_default()
            })
        } else {
            crate::wopi::rewrite::check_file_info(
                &rw.buf,
                w.upstream.expose(),
                &w.token,
                self.mobile.filter(|_| w.claims.mobile).map(|flags| {
                    crate::wopi::rewrite::MobileAmend {
                        flags,
                        user_id: &w.claims.user.id.opaque_id,
                    }
                }),
            )
        };
        match rewritten {
            Some(b) => *body = Some(bytes::Bytes::from(b)),
            // Never pass on an answer that may still carry the wopiserver token.
            None => {
                return Err(pingora::Error::explain(
                    ErrorType::InternalError,
                    "wopiserver answer is not the expected JSON",
                ));
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        answer_failure(session, e, &ctx.request_id).await
    }

    /// pingora's error log line; the default includes the query string, which carries tokens.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        format!(
            "{} {} request_id={}",
            session.req_header().method,
            session.req_header().uri.path(),
            ctx.request_id
        )
    }

    async fn logging(
        &self,
        session: &mut Session,
        e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let class = crate::metrics::status_class(status);
        let took = ctx.started.elapsed();
        let (bytes_in, bytes_out) = (session.body_bytes_read(), session.body_bytes_sent());
        let m = crate::metrics::metrics();
        m.http_requests
            .with_label_values(&["public", ctx.route.label(), class])
            .inc();
        let app = ctx.app.as_deref().unwrap_or("unknown");
        if matches!(
            ctx.route,
            Route::WopiFile | Route::Bootstrapper | Route::MobileWopi
        ) && !ctx.operation.is_empty()
        {
            let labels = [ctx.operation, app];
            m.wopi_requests
                .with_label_values(&[ctx.operation, app, class])
                .inc();
            m.wopi_duration
                .with_label_values(&labels)
                .observe(took.as_secs_f64());
            m.wopi_request_bytes
                .with_label_values(&labels)
                .inc_by(bytes_in as u64);
            m.wopi_response_bytes
                .with_label_values(&labels)
                .inc_by(bytes_out as u64);
        }
        // Path only: the query carries access tokens.
        tracing::info!(
            target: "wopigate::access",
            listener = "public",
            request_id = %ctx.request_id,
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            route = ctx.route.label(),
            operation = ctx.operation,
            app,
            status,
            duration_ms = took.as_secs_f64() * 1000.0,
            upstream_ms = ctx.upstream_took.map(|d| d.as_secs_f64() * 1000.0),
            bytes_in,
            bytes_out,
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}

/// The percent-decoded `access_token` query value, if present once.
fn raw_query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// An open-flow error as a WOPI client should see it: no permission or not a file is 404
/// (wopi.md §1.6: do not leak existence).
fn wopi_error(e: ApiError) -> ApiError {
    match e.code {
        ErrorCode::Forbidden | ErrorCode::BadRequest | ErrorCode::UnsupportedExtension => {
            ApiError::new(ErrorCode::NotFound, "file not found")
        }
        _ => e,
    }
}

/// Points the upstream request at the wopiserver's inode and its token, and drops the gateway
/// token from `Authorization` (Office for the web repeats it there).
fn swap_token(req: &mut pingora::http::RequestHeader, w: &Wrapped) -> pingora::Result<()> {
    let Some(resource) = &w.claims.resource else {
        return Ok(());
    };
    let path = req.uri.path();
    let rest = path
        .strip_prefix("/wopi/files/")
        .and_then(|p| p.find('/').map(|i| &p[i..]))
        .unwrap_or("");
    let encoded = crate::wopi::rewrite::url_encoded(w.upstream.expose());
    let query = req.uri.query().unwrap_or_default();
    let mut target = String::with_capacity(path.len() + query.len() + encoded.len() + 64);
    target.push_str("/wopi/files/");
    target.push_str(&crate::wopi::rewrite::inode_of(resource));
    target.push_str(rest);
    target.push('?');
    let mut first = true;
    for p in query.split('&').filter(|p| !p.is_empty()) {
        if !first {
            target.push('&');
        }
        first = false;
        if p.starts_with("access_token=") {
            target.push_str("access_token=");
            target.push_str(&encoded);
        } else {
            target.push_str(p);
        }
    }
    let uri = http::Uri::try_from(target).map_err(|_| {
        pingora::Error::explain(ErrorType::InternalError, "cannot build the upstream URI")
    })?;
    req.set_uri(uri);
    req.remove_header(&http::header::AUTHORIZATION);
    Ok(())
}

/// A bounded name for why a proxied call to the wopiserver failed; `None` when it did not.
pub(crate) fn upstream_error_kind(e: &pingora::Error) -> Option<&'static str> {
    match e.etype() {
        ErrorType::ConnectTimedout => Some("connect_timeout"),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Some("unavailable")
        }
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => Some("tls"),
        _ if e.esource() == &pingora::ErrorSource::Upstream => Some(match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
            _ => "invalid",
        }),
        _ => None,
    }
}
