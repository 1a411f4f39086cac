//! Builds everything from a validated [`Config`] and runs it: a small control runtime for
//! background work and outbound clients, and pingora's server for the listeners. `run` is
//! synchronous because pingora's `run_forever` must not run inside a tokio runtime.

mod lifecycle;

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use tokio::task::JoinHandle;

use crate::auth::{JwksSource, OidcValidator, ValidatorSettings};
use crate::config::Config;
use crate::discovery::DiscoveryCache;
use crate::exchange::Exchanger;
use crate::http_client;
use crate::open::OpenService;
use crate::proxy::admin::AdminService;
use crate::proxy::client_limits::{ClientLimits, LimitedHttp};
use crate::proxy::internal::InternalGateway;
use crate::proxy::reloadable::Reloadable;
use crate::proxy::{Gateway, Upstream};
use crate::reva::RevaClient;
use crate::tls::ReloadableCert;
use crate::wopiserver::WopiserverClient;

/// How long start-up waits for the IdP keys and discovery before listening anyway.
const WARM_UP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the control runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot resolve wopiserver.url: {0}")]
    Upstream(String),
    #[error("exchange.mode = \"mint\" needs reva.jwt_secret_file")]
    NoRevaSecret,
    #[error("server.tls: {0}")]
    Tls(String),
}

/// Everything the listeners share, built inside the control runtime.
pub struct AppState {
    pub open: Arc<OpenService>,
    pub jwks: Arc<JwksSource>,
    pub discovery: Arc<DiscoveryCache>,
}

fn resolve_upstream(c: &Config) -> Result<Upstream, StartError> {
    let url = &c.wopiserver.url;
    let host = url
        .host_str()
        .ok_or_else(|| StartError::Upstream("no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| StartError::Upstream("no port".into()))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| StartError::Upstream(e.to_string()))?
        .next()
        .ok_or_else(|| StartError::Upstream("no address".into()))?;
    Ok(Upstream {
        addr,
        tls: url.scheme() == "https",
        sni: host.to_owned(),
        authority: format!("{host}:{port}"),
        connect_timeout: c.wopiserver.connect_timeout,
        read_timeout: c.wopiserver.proxy_read_timeout,
        ca: None,
        client_cert: None,
    }
    .with_tls(&c.wopiserver.tls))
}

/// Builds the shared state; must run inside a tokio runtime (lazy gRPC channel).
pub fn build_state(c: &Config) -> Result<AppState, StartError> {
    let reva = RevaClient::new(
        &c.reva.gateway,
        c.reva.connect_timeout,
        c.reva.timeout,
        &c.reva.tls,
    );
    let jwks = Arc::new(JwksSource::new(
        http_client::client_tls(c.oidc.http_timeout, c.oidc.http_timeout, &c.oidc.tls),
        c.oidc.discovery_url.clone(),
        c.oidc.issuer.clone(),
        c.oidc.jwks_min_refetch,
    ));
    let validator = Arc::new(OidcValidator::new(
        ValidatorSettings::from_config(&c.oidc),
        jwks.clone(),
    ));
    let exchanger = Arc::new(
        Exchanger::from_config(&c.exchange, c.reva.jwt_secret.as_ref(), &reva)
            .ok_or(StartError::NoRevaSecret)?,
    );
    let discovery = Arc::new(DiscoveryCache::with_preferences(
        &c.office,
        c.open.app_preference.clone(),
    ));
    let wopiserver = Arc::new(WopiserverClient::new(
        c.wopiserver.url.clone(),
        c.wopiserver.iop_secret.clone(),
        c.wopiserver.connect_timeout,
        c.wopiserver.timeout,
        &c.wopiserver.tls,
    ));
    let open = Arc::new(OpenService {
        validator,
        exchanger,
        reva,
        discovery: discovery.clone(),
        wopiserver,
        claims: c.exchange.claims.clone(),
        folder_url_base: c.open.folder_url_base.clone(),
        wrap: c.tokens.key.as_ref().map(|key| {
            Arc::new(crate::open::wrap::TokenWrap::new(
                crate::gwtoken::TokenKeys::new(key, c.tokens.previous_key.as_ref()),
                c.tokens.ttl,
                c.tokens.wrap,
            ))
        }),
    });
    Ok(AppState {
        open,
        jwks,
        discovery,
    })
}

/// One configuration's worth of services, built together and swapped in together.
struct Generation {
    state: AppState,
    public: Gateway,
    internal: Option<InternalGateway>,
    admin: Option<AdminService>,
}

fn build_generation(c: &Config) -> Result<Generation, StartError> {
    let state = build_state(c)?;
    let upstream = resolve_upstream(c)?;
    let public = Gateway {
        open: state.open.clone(),
        wopi_files: crate::proxy::wopi_files::WopiFilesGuard {
            discovery: state.discovery.clone(),
            public_url: c.server.public_url.clone(),
            reject_expired_tokens: c.wopi.reject_expired_tokens,
            wrap: state.open.wrap.clone(),
        },
        mobile_service: c.mobile.as_ref().map(|m| {
            Arc::new(crate::mobile::MobileService {
                open: state.open.clone(),
                jwks: state.jwks.clone(),
                public_url: c.server.public_url.clone(),
                settings: m.clone(),
            })
        }),
        mobile: c
            .mobile
            .as_ref()
            .map(|m| crate::wopi::rewrite::MobileFlags {
                is_edu_user: m.is_edu_user,
                license_check_for_edit: m.license_check_for_edit,
            }),
        normalize_get_lock: c.wopi.normalize_get_lock,
        upstream: upstream.clone(),
        max_api_body_bytes: c.server.max_api_body_bytes,
        limits: c.server.limits,
        tls: c.server.tls.is_some(),
    };
    let internal = c.internal.as_ref().map(|internal| InternalGateway {
        allow: internal.allow.clone(),
        callers: crate::iop::LegacyCallers::new(
            &c.wopiserver.iop_secret,
            c.reva.jwt_secret.as_ref(),
        ),
        iop_secret: c.wopiserver.iop_secret.clone(),
        legacy_open: Arc::new(crate::iop::LegacyOpen {
            reva: state.open.reva.clone(),
            discovery: state.discovery.clone(),
            wopiserver: state.open.wopiserver.clone(),
        }),
        legacy_open_mode: internal.legacy_open,
        discovery: state.discovery.clone(),
        upstream: upstream.clone(),
    });
    let admin = c.admin.as_ref().map(|a| AdminService {
        jwks: state.jwks.clone(),
        discovery: state.discovery.clone(),
        reva: state.open.reva.clone(),
        wopiserver_url: c.wopiserver.url.clone(),
        http: http_client::client_tls(a.probe_timeout, a.probe_timeout, &c.wopiserver.tls),
        probe_timeout: a.probe_timeout,
    });
    Ok(Generation {
        state,
        public,
        internal,
        admin,
    })
}

/// Fetches IdP keys and discovery before a generation serves; bounded so a dead IdP or office
/// server cannot stall start-up or a reload.
async fn warm(state: &AppState) {
    let warm = async { tokio::join!(state.jwks.refresh(), state.discovery.refresh_all()) };
    if tokio::time::timeout(WARM_UP, warm).await.is_err() {
        tracing::warn!("IdP keys or discovery not loaded within {WARM_UP:?}; serving anyway");
    }
}

/// The background refresh loops of one generation; aborted when it is replaced.
fn spawn_refreshers(state: &AppState, c: &Config) -> Vec<JoinHandle<()>> {
    let jwks = state.jwks.clone();
    let jwks_every = c.oidc.jwks_refresh;
    vec![
        tokio::spawn(state.discovery.clone().run_refresh_loop()),
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(jwks_every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = jwks.refresh().await;
            }
        }),
    ]
}

/// Handles to swap a new generation into the running listeners.
struct Live {
    config_path: PathBuf,
    config: Config,
    public: Arc<ArcSwap<Gateway>>,
    internal: Option<Arc<ArcSwap<InternalGateway>>>,
    admin: Option<Arc<ArcSwap<AdminService>>>,
    cert: Option<Arc<ReloadableCert>>,
    refreshers: Vec<JoinHandle<()>>,
}

/// Settings a reload cannot change: the listeners are bound once.
/// pingora gives every accepted connection a 64 KiB read buffer, which is most of what an idle
/// keep-alive connection costs (10 000 of them: ~750 MiB). Plain HTTP reads straight into the
/// request parser's and body reader's own buffers; TLS keeps one record's worth.
const TLS_READ_BUFFER: usize = 16 * 1024;
/// Writes are coalesced one level up, above TLS, by `client_limits`' cork, which holds a buffer
/// only while a response is being written.
const L4_WRITE_BUFFER: usize = 0;

fn plain_listener(addr: std::net::SocketAddr) -> ListenerConfig {
    ListenerConfig::tcp(addr.to_string()).l4_buffer(L4BufferSettings::new(0, L4_WRITE_BUFFER))
}

/// A pingora proxy service whose connections obey the client limits (slow or huge heads).
fn limited_service<SV>(
    conf: &Arc<ServerConf>,
    svc: SV,
    name: &str,
    limits: ClientLimits,
) -> pingora::services::listening::Service<LimitedHttp<pingora::proxy::HttpProxy<SV>>>
where
    SV: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let proxy = pingora::proxy::http_proxy(conf, svc);
    pingora::services::listening::Service::new(name.to_owned(), LimitedHttp::new(proxy, limits))
}

fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.server.listen != new.server.listen {
        out.push("server.listen");
    }
    if old.server.threads != new.server.threads {
        out.push("server.threads");
    }
    if old.server.tls.is_some() != new.server.tls.is_some() {
        out.push("server.tls (on/off)");
    }
    if old.internal.as_ref().map(|i| i.listen) != new.internal.as_ref().map(|i| i.listen) {
        out.push("internal.listen");
    }
    if old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen) {
        out.push("admin.listen");
    }
    let connection_limits = |c: &Config| {
        let l = c.server.limits;
        (l.header_timeout, l.keepalive_timeout)
    };
    if connection_limits(old) != connection_limits(new) {
        out.push("server.header_timeout_ms / keepalive_timeout_seconds");
    }
    if old.server.log_json != new.server.log_json {
        out.push("server.log_format");
    }
    out
}

impl Live {
    /// Re-reads the configuration file and certificates and swaps in a warmed generation. On
    /// any problem nothing changes: the running generation keeps serving.
    async fn reload(&mut self) -> Result<(), String> {
        let config = Config::load(&self.config_path).map_err(|e| {
            e.problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        for key in restart_only_changes(&self.config, &config) {
            tracing::warn!(
                key,
                "changed in the configuration file; applies after a restart"
            );
        }
        if let (Some(cert), Some(tls)) = (&self.cert, &config.server.tls) {
            cert.reload(&tls.cert_file, &tls.key_file)?;
        }
        let generation = build_generation(&config).map_err(|e| e.to_string())?;
        warm(&generation.state).await;
        crate::telemetry::set_secrets(&config);
        self.public.store(Arc::new(generation.public));
        if let (Some(slot), Some(new)) = (&self.internal, generation.internal) {
            slot.store(Arc::new(new));
        }
        if let (Some(slot), Some(new)) = (&self.admin, generation.admin) {
            slot.store(Arc::new(new));
        }
        for task in self.refreshers.drain(..) {
            task.abort();
        }
        self.refreshers = spawn_refreshers(&generation.state, &config);
        self.config = config;
        Ok(())
    }
}

/// Runs the gateway until a signal stops it.
pub fn run(config_path: &Path, config: Config) -> Result<(), StartError> {
    http_client::install_crypto_provider();
    crate::telemetry::set_secrets(&config);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wopigate-control")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let generation = {
        let _guard = control.enter();
        build_generation(&config)?
    };
    control.block_on(warm(&generation.state));
    let refreshers = {
        let _guard = control.enter();
        spawn_refreshers(&generation.state, &config)
    };

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs()),
        daemon: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut listening = vec![config.server.listen];

    let (public, public_slot) = Reloadable::new(generation.public);
    let limits = ClientLimits {
        header_timeout: config.server.limits.header_timeout,
        keepalive_timeout: config.server.limits.keepalive_timeout,
    };
    let mut service = limited_service(&server.configuration, public, "public", limits);
    let cert = match &config.server.tls {
        Some(tls) => {
            let cert = Arc::new(
                ReloadableCert::load(&tls.cert_file, &tls.key_file).map_err(StartError::Tls)?,
            );
            let mut settings =
                TlsSettings::intermediate("", "").map_err(|e| StartError::Tls(e.to_string()))?;
            settings.set_cert_resolver(cert.clone());
            service.add_listener(
                ListenerConfig::tcp(config.server.listen.to_string())
                    .tls(settings)
                    .l4_buffer(L4BufferSettings::new(TLS_READ_BUFFER, L4_WRITE_BUFFER)),
            );
            Some(cert)
        }
        None => {
            service.add_listener(plain_listener(config.server.listen));
            None
        }
    };
    server.add_service(service);

    let internal_slot = match (generation.internal, &config.internal) {
        (Some(gw), Some(internal)) => {
            let (svc, slot) = Reloadable::new(gw);
            let mut service = limited_service(&server.configuration, svc, "internal", limits);
            service.add_listener(plain_listener(internal.listen));
            server.add_service(service);
            listening.push(internal.listen);
            tracing::info!(listen = %internal.listen, "internal IOP listener");
            Some(slot)
        }
        _ => None,
    };
    let admin_slot = match (generation.admin, &config.admin) {
        (Some(admin), Some(a)) => {
            let (svc, slot) = Reloadable::new(admin);
            let mut service = limited_service(&server.configuration, svc, "admin", limits);
            service.add_listener(plain_listener(a.listen));
            // One thread is plenty for scrapes and probes.
            service.threads = Some(1);
            server.add_service(service);
            listening.push(a.listen);
            tracing::info!(listen = %a.listen, "admin listener (metrics, healthz, readyz)");
            Some(slot)
        }
        _ => None,
    };
    tracing::info!(listen = %config.server.listen, tls = config.server.tls.is_some(), "wopigate listening");

    let live = Live {
        config_path: config_path.to_owned(),
        config,
        public: public_slot,
        internal: internal_slot,
        admin: admin_slot,
        cert,
        refreshers,
    };
    control.spawn(lifecycle::notify_ready_when_listening(listening));
    control.spawn(lifecycle::reload_on_sighup(live));
    server.run(RunArgs {
        shutdown_signal: Box::new(lifecycle::ShutdownWatch),
    });
    // The control runtime outlives the server; drop it without waiting for its loops.
    control.shutdown_background();
    Ok(())
}
