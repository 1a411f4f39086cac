//! One configuration's worth of services, built together and swapped in together. Building
//! does blocking work (resolving the wopiserver's name, reading trust stores), so a reload runs
//! it on the blocking pool, never on the control runtime's one worker that drives the REVA
//! channel and the key and discovery refreshes.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::StartError;
use crate::auth::{JwksSource, OidcValidator, ValidatorSettings};
use crate::backends::Backends;
use crate::config::Config;
use crate::control::Control;
use crate::discovery::DiscoveryCache;
use crate::exchange::Exchanger;
use crate::http_client;
use crate::open::OpenService;
use crate::proxy::admin::AdminService;
use crate::proxy::balance::Pool;
use crate::proxy::internal::InternalGateway;
use crate::proxy::{Gateway, Upstream};
use crate::reva::RevaClient;
use crate::wopi_call::GatewayTokens;
use crate::wopiserver::WopiserverClient;

/// How long start-up waits for the IdP keys and discovery before listening anyway.
const WARM_UP: Duration = Duration::from_secs(5);

/// Everything the listeners share; built where a tokio runtime is entered (lazy gRPC channel).
pub struct AppState {
    /// The outside components the flows share.
    pub backends: Arc<Backends>,
    pub open: Arc<OpenService>,
    /// Gateway tokens, when a token key is configured.
    pub tokens: Option<Arc<GatewayTokens>>,
    pub jwks: Arc<JwksSource>,
    pub discovery: Arc<DiscoveryCache>,
    /// The wopiserver instances (proxied traffic and `openinapp` alike).
    pub pool: Arc<Pool>,
}

fn resolve_upstream(
    c: &Config,
    instance: &crate::config::WopiserverInstance,
) -> Result<Upstream, StartError> {
    let url = &instance.url;
    let fail = |why: String| StartError::Upstream(format!("{}: {why}", instance.name));
    let host = url.host_str().ok_or_else(|| fail("no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| fail("no port".into()))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    Upstream {
        addr,
        tls: url.scheme() == "https",
        sni: host.to_owned(),
        authority: format!("{host}:{port}"),
        connect_timeout: c.wopiserver.connect_timeout,
        read_timeout: c.wopiserver.proxy_read_timeout,
        ca: None,
        client_cert: None,
    }
    .with_tls(&c.wopiserver.tls)
    .map_err(StartError::Setup)
}

/// The wopiserver instances: the pool the proxied traffic is balanced over, and the client
/// the gateway's own calls (`openinapp`, locks, Save As) use on the same instances.
fn wopiserver_instances(c: &Config) -> Result<(Arc<Pool>, Arc<WopiserverClient>), StartError> {
    let upstreams = c
        .wopiserver
        .instances
        .iter()
        .map(|x| resolve_upstream(c, x))
        .collect::<Result<Vec<_>, _>>()?;
    let hc = &c.wopiserver.health_check;
    let probe_http = http_client::client_tls(hc.timeout, hc.timeout, &c.wopiserver.tls)
        .map_err(|e| StartError::Setup(format!("wopiserver.tls: {e}")))?;
    let pool =
        Arc::new(Pool::new(&c.wopiserver, upstreams, probe_http).map_err(StartError::Setup)?);
    let wopiserver = Arc::new(
        WopiserverClient::new(
            pool.instances.clone(),
            c.wopiserver.iop_secret.clone(),
            c.wopiserver.connect_timeout,
            c.wopiserver.timeout,
            &c.wopiserver.tls,
        )
        .map_err(|e| StartError::Setup(format!("wopiserver.tls: {e}")))?,
    );
    Ok((pool, wopiserver))
}

/// Builds the shared state; must run inside a tokio runtime (lazy gRPC channel). `control`
/// is the process's: it outlives every configuration generation.
pub fn build_state(c: &Config, control: &Arc<Control>) -> Result<AppState, StartError> {
    let reva = RevaClient::new(
        &c.reva.gateway,
        c.reva.connect_timeout,
        c.reva.timeout,
        &c.reva.tls,
    )
    .map_err(StartError::Setup)?;
    let jwks = Arc::new(JwksSource::new(
        http_client::client_tls(c.oidc.http_timeout, c.oidc.http_timeout, &c.oidc.tls)
            .map_err(|e| StartError::Setup(format!("oidc.tls: {e}")))?,
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
    let discovery = Arc::new(
        DiscoveryCache::with_preferences(&c.office, c.open.app_preference.clone())
            .map_err(|e| StartError::Setup(format!("office: {e}")))?,
    );
    let (pool, wopiserver) = wopiserver_instances(c)?;
    let wrap = c.tokens.key.as_ref().map(|key| {
        Arc::new(crate::tokens::remembered::TokenWrap::new(
            crate::tokens::gateway::TokenKeys::new(key, c.tokens.previous_key.as_ref()),
            c.tokens.ttl,
            c.tokens.idle,
            c.tokens.recheck,
        ))
    });
    let backends = Arc::new(Backends {
        validator,
        exchanger,
        reva,
        wopiserver,
        discovery: discovery.clone(),
        rate_limits: Arc::new(crate::rate::RateLimits::from_config(&c.rate_limits)),
        control: control.clone(),
    });
    let open = Arc::new(OpenService {
        backends: backends.clone(),
        claims: c.exchange.claims.clone(),
        folder_url_base: c.open.folder_url_base.clone(),
        wrap_open: wrap.clone().filter(|_| c.tokens.wrap),
    });
    let tokens = wrap.map(|wrap| {
        Arc::new(GatewayTokens {
            wrap,
            open: open.clone(),
        })
    });
    Ok(AppState {
        backends,
        open,
        tokens,
        jwks,
        discovery,
        pool,
    })
}

/// One configuration's services; each holds the generation's [`GenerationAlive`] mark.
///
/// [`GenerationAlive`]: crate::metrics::GenerationAlive
pub(super) struct Generation {
    pub state: AppState,
    pub public: Gateway,
    pub internal: Option<InternalGateway>,
    pub admin: Option<AdminService>,
}

pub(super) fn build_generation(
    c: &Config,
    control: &Arc<Control>,
) -> Result<Generation, StartError> {
    let state = build_state(c, control)?;
    let generation = crate::metrics::GenerationAlive::new();
    let public = Gateway {
        open: state.open.clone(),
        wopi: crate::wopi_call::Flow {
            guard: crate::wopi_call::Guard {
                discovery: state.discovery.clone(),
                public_url: c.server.public_url.clone(),
                reject_expired_tokens: c.wopi.reject_expired_tokens,
                seen: Default::default(),
                control: control.clone(),
            },
            tokens: state.tokens.clone(),
            save_as: state.tokens.clone().filter(|_| c.wopi.put_relative),
            normalize_get_lock: c.wopi.normalize_get_lock,
            rename: c.wopi.rename && state.tokens.is_some(),
            mobile: c.mobile.as_ref().map(|m| crate::tokens::swap::MobileFlags {
                is_edu_user: m.is_edu_user,
                license_check_for_edit: m.license_check_for_edit,
            }),
        },
        // `[mobile]` needs gateway tokens (the configuration refuses it without).
        mobile_service: c.mobile.as_ref().zip(state.tokens.as_ref()).map(|(m, t)| {
            Arc::new(crate::mobile::MobileService {
                backends: state.backends.clone(),
                wrap: t.wrap.clone(),
                jwks: state.jwks.clone(),
                public_url: c.server.public_url.clone(),
                settings: m.clone(),
            })
        }),
        pool: state.pool.clone(),
        max_api_body_bytes: c.server.max_api_body_bytes,
        limits: c.server.limits,
        tls: c.server.tls.is_some(),
        trusted_proxies: c.server.trusted_proxies.clone().into(),
        public_url: c.server.public_url.clone(),
        logout: (!c.oidc.logout_clients.is_empty()).then(|| {
            Arc::new(crate::backchannel::BackchannelLogout {
                verifier: crate::auth::logout::LogoutVerifier::new(&c.oidc, state.jwks.clone()),
                control: control.clone(),
            })
        }),
        generation: generation.clone(),
    };
    let internal = c.internal.as_ref().map(|internal| InternalGateway {
        allow: internal.allow.clone(),
        callers: crate::iop::LegacyCallers::new(
            &c.wopiserver.iop_secret,
            c.reva.jwt_secret.as_ref(),
        ),
        iop_secret: c.wopiserver.iop_secret.clone(),
        legacy_open: Arc::new(crate::iop::LegacyOpen {
            reva: state.backends.reva.clone(),
            discovery: state.discovery.clone(),
            wopiserver: state.backends.wopiserver.clone(),
        }),
        legacy_open_mode: internal.legacy_open,
        discovery: state.discovery.clone(),
        pool: state.pool.clone(),
        trusted_proxies: c.server.trusted_proxies.clone().into(),
        allow_forwarded: internal.allow_forwarded,
        generation: generation.clone(),
    });
    let admin = admin_service(c, &state, control, generation)?;
    Ok(Generation {
        state,
        public,
        internal,
        admin,
    })
}

/// The admin listener's service: probes, and the admin API when a bearer is configured.
fn admin_service(
    c: &Config,
    state: &AppState,
    control: &Arc<Control>,
    generation: Arc<crate::metrics::GenerationAlive>,
) -> Result<Option<AdminService>, StartError> {
    let Some(a) = &c.admin else {
        return Ok(None);
    };
    Ok(Some(AdminService {
        jwks: state.jwks.clone(),
        discovery: state.discovery.clone(),
        reva: state.backends.reva.clone(),
        pool: state.pool.clone(),
        http: http_client::client_tls(a.probe_timeout, a.probe_timeout, &c.wopiserver.tls)
            .map_err(|e| StartError::Setup(format!("wopiserver.tls: {e}")))?,
        probe_timeout: a.probe_timeout,
        api: a
            .token
            .as_ref()
            .map(|t| Arc::new(crate::admin::AdminApi::new(state.open.clone(), t))),
        control: control.clone(),
        generation,
    }))
}

/// Fetches IdP keys and discovery before a generation serves; bounded so a dead IdP or office
/// server cannot stall start-up or a reload.
pub(super) async fn warm(state: &AppState) {
    let warm = async { tokio::join!(state.jwks.refresh(), state.discovery.refresh_all()) };
    if tokio::time::timeout(WARM_UP, warm).await.is_err() {
        tracing::warn!("IdP keys or discovery not loaded within {WARM_UP:?}; serving anyway");
    }
}

/// The background refresh loops of one generation; aborted when it is replaced.
pub(super) fn spawn_refreshers(state: &AppState, c: &Config) -> Vec<JoinHandle<()>> {
    let jwks = state.jwks.clone();
    let jwks_every = c.oidc.jwks_refresh;
    vec![
        tokio::spawn(state.discovery.clone().run_refresh_loop()),
        tokio::spawn(state.pool.health_loop()),
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
