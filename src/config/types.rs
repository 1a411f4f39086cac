//! The validated configuration: every value usable as is (durations, parsed URLs, secrets read
//! from their files). Keys and defaults are in the README's configuration reference; each field
//! says what it means to the gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::file::{ClaimNames, DiscoveryFormat, ExchangeMode, LegacyOpenMode, ProofMode};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// Validated configuration. Everything here is usable as is.
#[derive(Debug, Clone)]
pub struct Config {
    /// The public listener.
    pub server: Server,
    /// The OpenID provider whose tokens callers present.
    pub oidc: Oidc,
    /// How an OIDC identity becomes a REVA token.
    pub exchange: Exchange,
    /// The REVA gateway (CS3 gRPC).
    pub reva: Reva,
    /// The CS3 WOPI server behind the gateway.
    pub wopiserver: Wopiserver,
    /// Office apps in order of preference.
    pub office: Vec<OfficeApp>,
    /// The open APIs' settings.
    pub open: Open,
    /// Normalisations of the wopiserver's WOPI answers.
    pub wopi: Wopi,
    /// The internal IOP listener; `None` when off.
    pub internal: Option<Internal>,
    /// The admin listener; `None` when disabled.
    pub admin: Option<Admin>,
    /// Gateway-issued WOPI tokens.
    pub tokens: Tokens,
    /// Office for iOS/Android; `None` when disabled.
    pub mobile: Option<Mobile>,
    pub rate_limits: RateLimitsConfig,
    /// The store replicas share; `None`: this process alone.
    pub store: Option<Store>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub url: Url,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    /// Sealing key; present when tokens are wrapped or `[mobile]` is on.
    pub key: Option<Secret>,
    /// The key before a rotation: its tokens keep verifying.
    pub previous_key: Option<Secret>,
    /// Whether the open API hands out gateway tokens instead of the wopiserver's.
    pub wrap: bool,
    /// Lifetime of tokens minted from an OIDC login.
    pub ttl: Duration,
    /// How often an open document's access is re-checked with REVA.
    pub recheck: Duration,
    /// How long a remembered wopiserver token is kept unused.
    pub idle: Duration,
}

#[derive(Debug, Clone)]
pub struct Mobile {
    /// `authorization_uri` of the bootstrapper challenge; `None`: the IdP's.
    pub authorization_uri: Option<Url>,
    /// `tokenIssuance_uri` of the challenge; `None`: the IdP's.
    pub token_uri: Option<Url>,
    /// `providerId` assigned at onboarding.
    pub provider_id: Option<String>,
    /// `UrlSchemes` (a JSON object) assigned at onboarding.
    pub url_schemes: Option<String>,
    /// `IsEduUser` in CheckFileInfo and CheckContainerInfo.
    pub is_edu_user: bool,
    /// `LicenseCheckForEditIsEnabled` in CheckFileInfo and CheckContainerInfo.
    pub license_check_for_edit: bool,
    /// The office app mobile file tokens are opened with; `None`: the first that opens it.
    pub app: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// Deadline of each readiness probe.
    pub probe_timeout: Duration,
    /// The admin API's bearer; `None`: no admin API.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM chain, leaf first; re-read on SIGHUP.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Internal {
    /// The internal IOP listener's address.
    pub listen: SocketAddr,
    /// Networks allowed to call it; others get 403.
    pub allow: Vec<ipnet::IpNet>,
    /// Translate legacy `/wopi/iop/open` onto `openinapp`, or pass it through.
    pub legacy_open: LegacyOpenMode,
    /// Check `allow` against the forwarded client (behind a trusted proxy) instead of the peer.
    pub allow_forwarded: bool,
}

#[derive(Debug, Clone)]
pub struct Wopi {
    /// Answer GetLock on an unlocked file with 200, not the wopiserver's 404.
    pub normalize_get_lock: bool,
    /// Refuse expired wopiserver tokens here (the wopiserver would answer 500).
    pub reject_expired_tokens: bool,
    /// Serve PutRelativeFile here (effective only with a token key).
    pub put_relative: bool,
    /// Let gateway-token holders rename files (effective only with a token key).
    pub rename: bool,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// The public listener's address.
    pub listen: SocketAddr,
    /// Worker threads of the public listener.
    pub threads: usize,
    /// SIGTERM: how long in-flight requests may finish.
    pub grace_period: Duration,
    /// SIGTERM: how long runtimes get to stop after the grace period.
    pub graceful_shutdown_timeout: Duration,
    /// Log lines as JSON instead of text.
    pub log_json: bool,
    /// Largest request body of the gateway's own endpoints.
    pub max_api_body_bytes: usize,
    /// External origin without trailing slash, e.g. `https://wopi.example.org`.
    pub public_url: String,
    /// HTTPS on the public listener; `None`: plain HTTP.
    pub tls: Option<ServerTls>,
    /// What a client may take of a listener.
    pub limits: Limits,
    /// Load balancers whose forwarded headers name the client; empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What a client may take of a listener: time to send a head, idle time, pauses in bodies,
/// sizes. The same for every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive whole within this (slowloris).
    pub header_timeout: Duration,
    /// Longest idle time between requests on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// Longest pause within a request body.
    pub body_read_timeout: Duration,
    /// Longest a write to a client that does not read may wait.
    pub send_timeout: Duration,
    /// Largest request head (431 above).
    pub max_header_bytes: usize,
    /// Most request header fields (431 above).
    pub max_header_count: usize,
    /// Longest request target (414 above).
    pub max_uri_bytes: usize,
    /// Bytes per second a request body must average once `min_body_rate_after` has passed
    /// since its first bytes; 0: no floor.
    pub min_body_rate: u64,
    /// Grace time before `min_body_rate` applies.
    pub min_body_rate_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Oidc {
    /// The exact `iss` of accepted tokens; also where discovery is fetched.
    pub issuer: String,
    /// Where the discovery document is read from.
    pub discovery_url: Url,
    /// `aud` must contain this.
    pub audience: String,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Background refresh interval of the key set.
    pub jwks_refresh: Duration,
    /// Minimum gap between refetches (unknown `kid`, failures).
    pub jwks_min_refetch: Duration,
    /// Deadline of each request to the IdP.
    pub http_timeout: Duration,
    /// Size of the validated-token cache.
    pub token_cache_entries: u64,
    /// Largest token accepted.
    pub max_token_bytes: usize,
    /// TLS to the IdP.
    pub tls: ClientTls,
    /// The `aud`s a back-channel logout token may carry; empty: no logout endpoint.
    pub logout_clients: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Exchange {
    /// Mint REVA tokens here, or obtain them from REVA's `Authenticate`.
    pub mode: ExchangeMode,
    /// Lifetime of minted REVA tokens.
    pub token_ttl: Duration,
    /// `Authenticate` request's `type`.
    pub authenticate_type: String,
    /// `Authenticate` request's `client_id`.
    pub authenticate_client_id: String,
    /// Which OIDC claims name the REVA user.
    pub claims: ClaimNames,
}

#[derive(Debug, Clone)]
pub struct Reva {
    /// The gateway's gRPC URL.
    pub gateway: Url,
    /// Present in `mint` mode only; never leaves the process.
    pub jwt_secret: Option<Secret>,
    /// Deadline of every gRPC call.
    pub timeout: Duration,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// TLS for an `https://` gateway.
    pub tls: ClientTls,
}

#[derive(Debug, Clone)]
pub struct Wopiserver {
    /// The CS3 WOPI server's instances (one for a plain `url`).
    pub instances: Vec<WopiserverInstance>,
    /// Per-instance concurrency cap and queue.
    pub capacity: Capacity,
    /// How long a refused connection keeps an instance out of rotation.
    pub eject_for: Duration,
    pub health_check: HealthCheck,
    /// Its `iopsecretfile` content, sent as the bearer of internal calls.
    pub iop_secret: Secret,
    /// `openinapp` deadline.
    pub timeout: Duration,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Longest upstream silence while proxying WOPI traffic.
    pub proxy_read_timeout: Duration,
    /// TLS for an `https://` wopiserver.
    pub tls: ClientTls,
}

/// The most wopiserver instances one configuration may list.
pub const MAX_WOPISERVER_INSTANCES: usize = 64;

/// How many requests a wopiserver instance takes at once and how many may wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Concurrent requests per instance; 0: no cap.
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; beyond, 503 at once.
    pub queue: usize,
    /// Longest wait for a slot; then 503.
    pub queue_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WopiserverInstance {
    pub name: String,
    pub url: Url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_after: usize,
    pub unhealthy_after: usize,
}

/// Requests per key in each window; 0 = off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitsConfig {
    pub window: Duration,
    pub open_per_user: u32,
    pub open_per_client: u32,
    pub bootstrap_per_user: u32,
    pub bootstrap_per_client: u32,
    pub wopi_per_client: u32,
}

#[derive(Debug, Clone)]
pub struct OfficeApp {
    /// The app's name, the wopiserver's `appname`.
    pub name: String,
    /// Its discovery document (or a legacy wopiserver's endpoints).
    pub discovery_url: Url,
    /// Discovery refresh interval.
    pub refresh: Duration,
    /// Fetch deadline.
    pub timeout: Duration,
    /// How WOPI proofs are checked for requests whose token names this app.
    pub proof_keys: ProofMode,
    /// Minimum gap between early refetches after a proof mismatch.
    pub refetch_min: Duration,
    /// Discovery XML or a legacy wopiserver's JSON.
    pub format: DiscoveryFormat,
    /// The discovery net zone to use; `None`: `external…`, else the first.
    pub net_zone: Option<String>,
    /// Pinned CA certificates (PEM), when configured.
    pub ca_pem: Option<Vec<u8>>,
    /// Value for the `UI_LLCC`/`DC_LLCC` placeholders.
    pub ui_language: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Open {
    /// Base of `folderurl` (the file's folder path is appended).
    pub folder_url_base: Option<Url>,
    /// Dotted lower-case extension → app names, most preferred first.
    pub app_preference: std::collections::BTreeMap<String, Vec<String>>,
}
