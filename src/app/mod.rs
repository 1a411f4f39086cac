//! Builds everything from a validated [`Config`] and runs it: a small control runtime for
//! background work and outbound clients, and pingora's server for the listeners. `run` is
//! synchronous because pingora's `run_forever` must not run inside a tokio runtime.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use pingora::server::Server;
use pingora::server::configuration::ServerConf;

use crate::auth::{JwksSource, OidcValidator, ValidatorSettings};
use crate::config::Config;
use crate::discovery::DiscoveryCache;
use crate::exchange::Exchanger;
use crate::http_client;
use crate::open::OpenService;
use crate::proxy::{Gateway, Upstream};
use crate::reva::RevaClient;
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
    })
}

/// Builds the shared state; must run inside a tokio runtime (lazy gRPC channel).
pub fn build_state(c: &Config) -> Result<AppState, StartError> {
    let reva = RevaClient::new(&c.reva.gateway, c.reva.connect_timeout, c.reva.timeout);
    let jwks = Arc::new(JwksSource::new(
        http_client::client(c.oidc.http_timeout, c.oidc.http_timeout),
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
    ));
    let open = Arc::new(OpenService {
        validator,
        exchanger,
        reva,
        discovery: discovery.clone(),
        wopiserver,
        claims: c.exchange.claims.clone(),
        folder_url_base: c.open.folder_url_base.clone(),
    });
    Ok(AppState {
        open,
        jwks,
        discovery,
    })
}

/// Runs the gateway until a signal stops it.
pub fn run(config: Config) -> Result<(), StartError> {
    http_client::install_crypto_provider();
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wopigate-control")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let upstream = resolve_upstream(&config)?;
    let state = {
        let _guard = control.enter();
        build_state(&config)?
    };
    control.block_on(async {
        let warm = async { tokio::join!(state.jwks.refresh(), state.discovery.refresh_all()) };
        if tokio::time::timeout(WARM_UP, warm).await.is_err() {
            tracing::warn!("IdP keys or discovery not loaded within {WARM_UP:?}; starting anyway");
        }
    });
    control.spawn(state.discovery.clone().run_refresh_loop());
    let jwks = state.jwks.clone();
    let jwks_every = config.oidc.jwks_refresh;
    control.spawn(async move {
        let mut tick = tokio::time::interval(jwks_every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = jwks.refresh().await;
        }
    });

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs()),
        daemon: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = Gateway {
        open: state.open.clone(),
        wopi_files: crate::proxy::wopi_files::WopiFilesGuard {
            discovery: state.discovery.clone(),
            public_url: config.server.public_url.clone(),
            reject_expired_tokens: config.wopi.reject_expired_tokens,
        },
        normalize_get_lock: config.wopi.normalize_get_lock,
        upstream,
        max_api_body_bytes: config.server.max_api_body_bytes,
        tls: false,
    };
    let mut public =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "public");
    public.add_tcp(&config.server.listen.to_string());
    server.add_service(public);
    if let Some(internal) = &config.internal {
        let gateway = crate::proxy::internal::InternalGateway {
            allow: internal.allow.clone(),
            callers: crate::iop::LegacyCallers::new(
                &config.wopiserver.iop_secret,
                config.reva.jwt_secret.as_ref(),
            ),
            iop_secret: config.wopiserver.iop_secret.clone(),
            legacy_open: Arc::new(crate::iop::LegacyOpen {
                reva: state.open.reva.clone(),
                discovery: state.discovery.clone(),
                wopiserver: state.open.wopiserver.clone(),
            }),
            legacy_open_mode: internal.legacy_open,
            discovery: state.discovery.clone(),
            upstream: resolve_upstream(&config)?,
        };
        let mut service = pingora::proxy::http_proxy_service_with_name(
            &server.configuration,
            gateway,
            "internal",
        );
        service.add_tcp(&internal.listen.to_string());
        server.add_service(service);
        tracing::info!(listen = %internal.listen, "internal IOP listener");
    }
    tracing::info!(listen = %config.server.listen, "wopigate listening");
    // The control runtime must outlive the server; run_forever exits the process.
    let _control = control;
    server.run_forever();
}
