//! serde mirror of `wopigate.toml`. Unknown keys are errors; defaults live here, next to the key.

mod upstreams;

use std::path::PathBuf;

use serde::Deserialize;
pub use upstreams::{
    DiscoveryFormat, HealthCheckSection, OfficeSection, ProofMode, RevaSection,
    WopiserverInstanceSection, WopiserverSection,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    pub oidc: OidcSection,
    #[serde(default)]
    pub exchange: ExchangeSection,
    pub reva: RevaSection,
    pub wopiserver: WopiserverSection,
    /// `[[office]]`: the office apps, in order of preference.
    #[serde(default)]
    pub office: Vec<OfficeSection>,
    #[serde(default)]
    pub open: OpenSection,
    #[serde(default)]
    pub wopi: WopiSection,
    /// The internal listener for legacy IOP callers; absent = not started.
    pub internal: Option<InternalSection>,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub tokens: TokensSection,
    #[serde(default)]
    pub mobile: MobileSection,
    #[serde(default)]
    pub rate_limits: RateLimitsSection,
    /// `[store]`: the store replicas share revocations through; absent = this process alone.
    pub store: Option<StoreSection>,
}

/// The store several replicas share (Redis or Valkey).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `redis://host:port[/db]` or `rediss://…` (TLS, trusted by the system's roots).
    pub url: String,
    /// The store's password (`AUTH`), from a file; never in the URL.
    pub password_file: Option<PathBuf>,
}

/// Gateway-issued WOPI access tokens.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TokensSection {
    /// Key file (any long random text); required when tokens are wrapped or `[mobile]` is on.
    pub key_file: Option<PathBuf>,
    /// The key before the last rotation: its tokens still verify, none are issued with it.
    pub previous_key_file: Option<PathBuf>,
    /// Hand office apps gateway tokens instead of the wopiserver's (default: on in `mint` mode).
    pub wrap_tokens: Option<bool>,
    /// Lifetime of tokens minted from an OIDC login (open API, bootstrapper), seconds.
    pub ttl_seconds: Option<u64>,
    /// An open document's access is re-checked with REVA at most this often, seconds.
    pub recheck_seconds: Option<u64>,
    /// A remembered wopiserver token unused this long is dropped (renewed on the next use).
    pub idle_seconds: Option<u64>,
}

/// Office for iOS/Android: bootstrapper, ecosystem and containers.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MobileSection {
    pub enabled: bool,
    /// Override of the IdP's `authorization_endpoint` in the bootstrapper's challenge.
    pub authorization_uri: Option<String>,
    /// Override of the IdP's `token_endpoint` (`tokenIssuance_uri`).
    pub token_uri: Option<String>,
    /// `providerId` assigned by Microsoft at onboarding (`[a-zA-Z0-9]`).
    pub provider_id: Option<String>,
    /// `UrlSchemes` JSON object (`{"iOS": [...], "Android": [...]}`), sent URL-encoded.
    pub url_schemes: Option<String>,
    /// `IsEduUser` in CheckFileInfo and CheckContainerInfo.
    pub is_edu_user: bool,
    /// `LicenseCheckForEditIsEnabled` (business users); default true.
    pub license_check_for_edit: Option<bool>,
    /// The `[[office]]` app mobile file tokens are opened with (`appname` for the wopiserver);
    /// default: the first app whose discovery lists the extension.
    pub app: Option<String>,
}

/// The admin listener: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub enabled: bool,
    /// `host:port`; loopback unless `allow_public`.
    pub listen: String,
    /// Allow a non-loopback admin address (metrics and readiness detail become reachable).
    pub allow_public: bool,
    /// Deadline of each readiness probe (REVA, wopiserver), ms.
    pub probe_timeout_ms: u64,
    /// The admin API's bearer, from a file; the API is absent without it.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9180".into(),
            allow_public: false,
            probe_timeout_ms: 2000,
            token_file: None,
        }
    }
}

/// TLS termination on the public listener; certificate and key are re-read on reload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// TLS towards an upstream: trusted CAs and an optional client certificate.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsSection {
    /// PEM bundle of CAs to trust instead of the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for upstreams requiring mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalSection {
    /// `host:port` of the internal listener; never the public one.
    pub listen: String,
    /// Source networks allowed to call it (CIDR). Default: loopback only.
    #[serde(default = "default_internal_allow")]
    pub allow: Vec<String>,
    /// `translate`: answer legacy `/wopi/iop/open` via `openinapp`; `passthrough`: forward it
    /// (bearer rewritten) to an old wopiserver that still has it.
    #[serde(default = "default_legacy_open")]
    pub legacy_open: LegacyOpenMode,
    /// Check `allow` against the client a trusted proxy forwarded instead of the peer.
    #[serde(default)]
    pub allow_forwarded: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LegacyOpenMode {
    Translate,
    Passthrough,
}

fn default_internal_allow() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}
fn default_legacy_open() -> LegacyOpenMode {
    LegacyOpenMode::Translate
}

/// Normalisations of the wopiserver's deviations from the WOPI spec (cs3-wopiserver.md §6.1, §9.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WopiSection {
    /// GetLock on an unlocked file: the wopiserver's 404 + empty `X-WOPI-Lock` becomes 200.
    pub normalize_get_lock: bool,
    /// A WOPI token (or the REVA token inside it) past its `exp` gets 401 here, not the
    /// wopiserver's 500.
    pub reject_expired_tokens: bool,
    /// Serve PutRelativeFile (Save As, conversions) in the gateway instead of forwarding it to
    /// the wopiserver, which refuses it to regular users. Needs `tokens.key_file`.
    pub put_relative: bool,
    /// Forward RenameFile to the wopiserver for gateway tokens (whose session the gateway
    /// renews after the rename). Off: RenameFile answers 501 and CheckFileInfo says
    /// `SupportsRename`/`UserCanRename: false`, whatever the wopiserver's `enablerename` says (it
    /// renames either way).
    pub rename: bool,
}

impl Default for WopiSection {
    fn default() -> Self {
        Self {
            normalize_get_lock: true,
            reject_expired_tokens: true,
            put_relative: true,
            rename: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Public listener, `host:port`.
    pub listen: String,
    /// Worker threads of the public listener.
    pub threads: usize,
    /// Seconds in-flight requests get after SIGTERM (listeners close at once; the process
    /// leaves as soon as nothing is in flight). pingora `grace_period_seconds`.
    pub grace_period_seconds: u64,
    /// Seconds in-flight requests get to finish after the grace period.
    pub graceful_shutdown_timeout_seconds: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// Largest body accepted by the gateway's own endpoints (not WOPI traffic), bytes.
    pub max_api_body_bytes: usize,
    /// The origin clients use (`https://wopi.example.org`); proofs are checked against it.
    /// Default: `http(s)://<listen>`.
    pub public_url: Option<String>,
    /// `[server.tls]`: serve HTTPS on `listen`.
    pub tls: Option<ServerTlsSection>,
    /// A request head (line and headers) must arrive whole within this, counted from the
    /// connection's accept or, on a kept-alive connection, from the head's first byte, ms.
    pub header_timeout_ms: u64,
    /// Idle time allowed between requests on a kept-alive connection, seconds.
    pub keepalive_timeout_seconds: u64,
    /// Longest pause while reading a request body, ms.
    pub body_read_timeout_ms: u64,
    /// Longest a write to a client may wait (a client not reading its answer), ms.
    pub send_timeout_ms: u64,
    /// Largest request head (line and headers), bytes: 431 above it.
    pub max_header_bytes: usize,
    /// Most header fields in a request: 431 above it.
    pub max_header_count: usize,
    /// Longest request target (path and query), bytes: 414 above it.
    pub max_uri_bytes: usize,
    /// Bytes per second a request body must average once `min_body_rate_after_ms` have passed
    /// since its first bytes (slow POST); 0 turns the floor off. Pauses are bounded by
    /// `body_read_timeout_ms` either way.
    pub min_body_rate_bytes_per_second: u64,
    pub min_body_rate_after_ms: u64,
    /// Load balancers (CIDR) whose `Forwarded` / `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            threads: 2,
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 10,
            log_format: "text".into(),
            max_api_body_bytes: 16 * 1024,
            public_url: None,
            tls: None,
            header_timeout_ms: 10_000,
            keepalive_timeout_seconds: 60,
            body_read_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            max_header_bytes: 64 * 1024,
            max_header_count: 100,
            max_uri_bytes: 16 * 1024,
            min_body_rate_bytes_per_second: 1024,
            min_body_rate_after_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// Issuer, compared exactly with `iss`; discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Audience that `aud` must contain.
    pub audience: String,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_seconds: u64,
    #[serde(default = "default_jwks_min_refetch")]
    pub jwks_min_refetch_seconds: u64,
    #[serde(default = "default_http_timeout")]
    pub http_timeout_ms: u64,
    #[serde(default = "default_token_cache")]
    pub token_cache_entries: u64,
    /// Largest bearer token accepted, bytes.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
    /// `[oidc.tls]`: trusted CAs (and client certificate) for the IdP's discovery and JWKS.
    #[serde(default)]
    pub tls: ClientTlsSection,
    /// Client ids whose sessions the gateway serves: a back-channel logout token's `aud`
    /// must be one of them. Empty: no back-channel logout endpoint.
    #[serde(default)]
    pub logout_clients: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "PS256".into()]
}
fn default_leeway() -> u64 {
    60
}
fn default_jwks_refresh() -> u64 {
    600
}
fn default_jwks_min_refetch() -> u64 {
    30
}
fn default_http_timeout() -> u64 {
    5000
}
fn default_token_cache() -> u64 {
    100_000
}
fn default_max_token() -> usize {
    16 * 1024
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeMode {
    Mint,
    Authenticate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExchangeSection {
    pub mode: ExchangeMode,
    /// Lifetime of minted REVA tokens, seconds.
    pub token_ttl_seconds: u64,
    /// Auth-registry type for `GatewayAPI/Authenticate`.
    pub authenticate_type: String,
    pub authenticate_client_id: String,
    pub claims: ClaimNames,
}

impl Default for ExchangeSection {
    fn default() -> Self {
        Self {
            mode: ExchangeMode::Mint,
            token_ttl_seconds: 3600,
            authenticate_type: "bearer".into(),
            authenticate_client_id: String::new(),
            claims: ClaimNames::default(),
        }
    }
}

/// `[rate_limits]`: requests per key and window; 0 = off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsSection {
    pub window_seconds: u64,
    pub open_per_user: u32,
    pub open_per_client: u32,
    pub bootstrap_per_user: u32,
    pub bootstrap_per_client: u32,
    pub wopi_per_client: u32,
}

impl Default for RateLimitsSection {
    fn default() -> Self {
        Self {
            window_seconds: 60,
            open_per_user: 120,
            open_per_client: 0,
            bootstrap_per_user: 60,
            bootstrap_per_client: 0,
            wopi_per_client: 0,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenSection {
    /// Base of `folderurl` (the "back to folder" link); the file's folder path is appended.
    pub folder_url_base: Option<String>,
    /// Per dotted extension, app names in order of preference (before the `[[office]]` order).
    pub app_preference: std::collections::BTreeMap<String, Vec<String>>,
}

/// OIDC claim names the REVA user is built from.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub opaque_id: String,
    pub idp: String,
    pub username: String,
    pub mail: String,
    pub display_name: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            opaque_id: "sub".into(),
            idp: "iss".into(),
            username: "preferred_username".into(),
            mail: "email".into(),
            display_name: "name".into(),
        }
    }
}
