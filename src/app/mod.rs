//! Builds everything from a validated [`Config`] and runs it: a small control runtime for
//! background work and outbound clients, and pingora's server for the listeners. `run` is
//! synchronous because pingora's `run_forever` must not run inside a tokio runtime.

mod generation;
mod lifecycle;
mod reload;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::config::Config;
use crate::http_client;
use crate::proxy::Listener;
use crate::proxy::conn::{ClientLimits, LimitedHttp};
use crate::tls::ReloadableCert;
pub use generation::{AppState, build_state};
use generation::{build_generation, spawn_refreshers, warm};
use reload::Live;

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
    /// A setting the client libraries refuse; the message names the key.
    #[error("{0}")]
    Setup(String),
}

/// Settings a reload cannot change: the listeners are bound once.
/// pingora gives every accepted connection a 64 KiB read buffer, which is most of what an idle
/// keep-alive connection costs (10 000 of them: ~750 MiB). Plain HTTP reads straight into the
/// request parser's and body reader's own buffers; TLS keeps one record's worth.
const TLS_READ_BUFFER: usize = 16 * 1024;
/// Writes are coalesced one level up, above TLS, by the connection layer's cork (`proxy::conn`), which holds a buffer
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

/// Where a reload stores a listener's next generation.
type Slot<G> = Arc<ArcSwap<G>>;

/// pingora's server settings: threads, and how long a shutdown waits for requests in flight.
fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs()),
        daemon: false,
        // One runtime per worker thread, a connection stays on the thread that accepted it
        // (pingora's no-steal runtime): no cross-thread wake-ups or task stealing on the
        // request path. The gateway's per-request work is short and even, the case it suits.
        work_stealing: false,
        ..ServerConf::default()
    }
}

/// The public listener, plain or TLS (with the certificate a reload can swap).
fn add_public(
    server: &mut Server,
    gateway: crate::proxy::Gateway,
    config: &Config,
    limits: ClientLimits,
) -> Result<(Slot<crate::proxy::Gateway>, Option<Arc<ReloadableCert>>), StartError> {
    let (public, slot) = Listener::new(gateway);
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
    Ok((slot, cert))
}

/// A plain-HTTP listener of its own (internal, admin), on `threads` threads (default: the
/// server's).
fn add_plain<G>(
    server: &mut Server,
    generation: G,
    (name, listen): (&str, std::net::SocketAddr),
    limits: ClientLimits,
    threads: Option<usize>,
) -> Slot<G>
where
    Listener<G>: pingora::proxy::ProxyHttp + Send + Sync + 'static,
    <Listener<G> as pingora::proxy::ProxyHttp>::CTX: Send + Sync,
{
    let (svc, slot) = Listener::new(generation);
    let mut service = limited_service(&server.configuration, svc, name, limits);
    service.add_listener(plain_listener(listen));
    service.threads = threads;
    server.add_service(service);
    slot
}

/// Runs the gateway until a signal stops it.
pub fn run(config_path: &Path, config: Config) -> Result<(), StartError> {
    crate::memory::keep_body_buffers();
    http_client::install_crypto_provider();
    crate::telemetry::set_secrets(&config);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wopigate-control")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    crate::metrics::watch_control_runtime(control.handle().clone());
    let (generation, operator) = {
        let _guard = control.enter();
        let operator = crate::control::Control::new(&config).map_err(StartError::Setup)?;
        operator.spawn_followers();
        (build_generation(&config, &operator)?, operator)
    };
    control.block_on(warm(&generation.state));
    let refreshers = {
        let _guard = control.enter();
        spawn_refreshers(&generation.state, &config)
    };
    // Lives as long as the process; independent of the configuration.
    control.spawn(crate::memory::hand_back_after_bursts());

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    let mut listening = vec![config.server.listen];

    let limits = ClientLimits {
        header_timeout: config.server.limits.header_timeout,
        keepalive_timeout: config.server.limits.keepalive_timeout,
    };
    let (public_slot, cert) = add_public(&mut server, generation.public, &config, limits)?;
    let internal_slot = match (generation.internal, &config.internal) {
        (Some(gw), Some(internal)) => {
            listening.push(internal.listen);
            tracing::info!(listen = %internal.listen, "internal IOP listener");
            let listener = ("internal", internal.listen);
            Some(add_plain(&mut server, gw, listener, limits, None))
        }
        _ => None,
    };
    let admin_slot = match (generation.admin, &config.admin) {
        (Some(admin), Some(a)) => {
            listening.push(a.listen);
            tracing::info!(listen = %a.listen, "admin listener (metrics, healthz, readyz)");
            // One thread is plenty for scrapes and probes.
            Some(add_plain(
                &mut server,
                admin,
                ("admin", a.listen),
                limits,
                Some(1),
            ))
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
        control: operator,
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
