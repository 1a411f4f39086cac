//! Configuration in three layers: CLI → [`file::FileConfig`] (serde mirror of the TOML) →
//! validated [`Config`]. Every problem is reported as `key.path (line N): reason`, all at once.

pub mod file;
mod locate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

pub use file::{ClaimNames, DiscoveryFormat, ExchangeMode, LegacyOpenMode, ProofMode};

use crate::secret::{Secret, WELL_KNOWN_REVA_SECRET};
use crate::tls::ClientTls;

/// Validated configuration. Everything here is usable as is.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub oidc: Oidc,
    pub exchange: Exchange,
    pub reva: Reva,
    pub wopiserver: Wopiserver,
    pub office: Vec<OfficeApp>,
    pub open: Open,
    pub wopi: Wopi,
    pub internal: Option<Internal>,
    /// The admin listener; `None` when disabled.
    pub admin: Option<Admin>,
    pub tokens: Tokens,
    /// Office for iOS/Android; `None` when disabled.
    pub mobile: Option<Mobile>,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    /// Present when tokens are wrapped or `[mobile]` is on.
    pub key: Option<Secret>,
    pub previous_key: Option<Secret>,
    pub wrap: bool,
    pub ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Mobile {
    pub authorization_uri: Option<Url>,
    pub token_uri: Option<Url>,
    pub provider_id: Option<String>,
    pub url_schemes: Option<String>,
    pub is_edu_user: bool,
    pub license_check_for_edit: bool,
    pub app: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    pub probe_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Internal {
    pub listen: SocketAddr,
    pub allow: Vec<ipnet::IpNet>,
    pub legacy_open: LegacyOpenMode,
}

#[derive(Debug, Clone)]
pub struct Wopi {
    pub normalize_get_lock: bool,
    pub reject_expired_tokens: bool,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub threads: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub log_json: bool,
    pub max_api_body_bytes: usize,
    /// External origin without trailing slash, e.g. `https://wopi.example.org`.
    pub public_url: String,
    pub tls: Option<ServerTls>,
    pub limits: Limits,
}

/// What a client may take of a listener: time to send a head, idle time, pauses in bodies,
/// sizes. The same for every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub body_read_timeout: Duration,
    pub send_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_header_count: usize,
    pub max_uri_bytes: usize,
    /// Bytes per second a request body must average once `min_body_rate_after` has passed
    /// since its first bytes; 0: no floor.
    pub min_body_rate: u64,
    pub min_body_rate_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Oidc {
    pub issuer: String,
    pub discovery_url: Url,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub jwks_refresh: Duration,
    pub jwks_min_refetch: Duration,
    pub http_timeout: Duration,
    pub token_cache_entries: u64,
    pub max_token_bytes: usize,
    pub tls: ClientTls,
}

#[derive(Debug, Clone)]
pub struct Exchange {
    pub mode: ExchangeMode,
    pub token_ttl: Duration,
    pub authenticate_type: String,
    pub authenticate_client_id: String,
    pub claims: ClaimNames,
}

#[derive(Debug, Clone)]
pub struct Reva {
    pub gateway: Url,
    /// Present in `mint` mode only; never leaves the process.
    pub jwt_secret: Option<Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub tls: ClientTls,
}

#[derive(Debug, Clone)]
pub struct Wopiserver {
    pub url: Url,
    pub iop_secret: Secret,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub proxy_read_timeout: Duration,
    pub tls: ClientTls,
}

#[derive(Debug, Clone)]
pub struct OfficeApp {
    pub name: String,
    pub discovery_url: Url,
    pub refresh: Duration,
    pub timeout: Duration,
    pub proof_keys: ProofMode,
    pub refetch_min: Duration,
    pub format: DiscoveryFormat,
    pub net_zone: Option<String>,
    /// Pinned CA certificates (PEM), when configured.
    pub ca_pem: Option<Vec<u8>>,
    pub ui_language: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Open {
    pub folder_url_base: Option<Url>,
    /// Dotted lower-case extension → app names, most preferred first.
    pub app_preference: std::collections::BTreeMap<String, Vec<String>>,
}

/// One configuration problem: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.reason),
            None => write!(f, "{}: {}", self.key, self.reason),
        }
    }
}

/// All problems found in one configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl Config {
    /// Reads, parses and validates `path`. Relative secret paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                key: path.display().to_string(),
                line: None,
                reason: format!("cannot read: {e}"),
            }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::parse_in(text, base, credentials.as_deref())
    }

    /// [`Config::parse`] with an explicit systemd credentials directory.
    pub fn parse_in(
        text: &str,
        base: &Path,
        credentials: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let raw: file::FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![locate::parse_problem(text, &e)],
        })?;
        let mut v = Validator {
            text,
            base,
            credentials,
            problems: Vec::new(),
        };
        let config = v.validate(raw);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError {
                problems: v.problems,
            }),
        }
    }
}

struct Validator<'a> {
    text: &'a str,
    base: &'a Path,
    credentials: Option<&'a Path>,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            line: locate::line_of(self.text, key),
            reason: reason.into(),
        });
    }

    fn url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problem(key, "must be an http(s) URL with a host");
                None
            }
            Err(e) => {
                self.problem(key, format!("not a URL: {e}"));
                None
            }
        }
    }

    /// A file path from the configuration: `$CREDENTIALS_DIRECTORY/…` names a systemd credential
    /// (`LoadCredential=`), relative paths are relative to the configuration file's folder.
    fn resolve(&self, path: &Path) -> PathBuf {
        if let Ok(rest) = path.strip_prefix("$CREDENTIALS_DIRECTORY")
            && let Some(dir) = self.credentials
        {
            return dir.join(rest);
        }
        self.base.join(path)
    }

    fn secret(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let full: PathBuf = self.resolve(path);
        match Secret::from_file(&full) {
            Ok(s) if s.is_empty() => {
                self.problem(key, format!("secret file {} is empty", full.display()));
                None
            }
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(
                    key,
                    format!("cannot read secret file {}: {e}", full.display()),
                );
                None
            }
        }
    }

    fn read_pem(&mut self, key: &str, path: &Path) -> Option<(PathBuf, Vec<u8>)> {
        let full = self.resolve(path);
        match std::fs::read(&full) {
            Ok(pem) => Some((full, pem)),
            Err(e) => {
                self.problem(key, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    /// A PEM CA bundle with at least one certificate.
    fn ca_bundle(&mut self, key: &str, path: &Path) -> Option<Vec<u8>> {
        let (full, pem) = self.read_pem(key, path)?;
        if crate::tls::read_certs(&full).is_err() {
            self.problem(key, format!("{} holds no PEM certificate", full.display()));
            return None;
        }
        Some(pem)
    }

    fn client_tls(&mut self, section: &str, t: &file::ClientTlsSection) -> ClientTls {
        let ca_pem = t
            .ca_file
            .as_ref()
            .and_then(|p| self.ca_bundle(&format!("{section}.tls.ca_file"), p));
        let identity_pem = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => {
                let (cert, key) = (self.resolve(c), self.resolve(k));
                match crate::tls::load_certified_key(&cert, &key) {
                    Ok(_) => match (std::fs::read(&cert), std::fs::read(&key)) {
                        (Ok(c), Ok(k)) => Some((c, k)),
                        _ => None,
                    },
                    Err(reason) => {
                        self.problem(&format!("{section}.tls.cert_file"), reason);
                        None
                    }
                }
            }
            (None, None) => None,
            _ => {
                self.problem(
                    &format!("{section}.tls"),
                    "cert_file and key_file go together",
                );
                None
            }
        };
        ClientTls {
            ca_pem,
            identity_pem,
        }
    }

    fn positive(&mut self, key: &str, value: u64) -> Duration {
        if value == 0 {
            self.problem(key, "must be greater than 0");
        }
        Duration::from_millis(value)
    }

    fn validate(&mut self, raw: file::FileConfig) -> Option<Config> {
        let server = self.server(raw.server);
        let oidc = self.oidc(raw.oidc);
        let exchange = self.exchange(raw.exchange);
        let reva = self.reva(raw.reva, exchange.mode);
        let wopiserver = self.wopiserver(raw.wopiserver);
        if let (Some(reva), Some(wopi)) = (&reva, &wopiserver)
            && reva.jwt_secret.as_ref() == Some(&wopi.iop_secret)
        {
            self.problem(
                "wopiserver.iop_secret_file",
                "the IOP secret must differ from the REVA JWT secret",
            );
        }
        let office = self.office(raw.office);
        let internal = raw
            .internal
            .and_then(|i| self.internal(i, server.as_ref().map(|s| s.listen)));
        let admin = self.admin(
            raw.admin,
            server.as_ref().map(|s| s.listen),
            internal.as_ref().map(|i| i.listen),
        );
        let mobile = self.mobile(raw.mobile, exchange.mode);
        if let Some(app) = mobile.as_ref().and_then(|m| m.app.as_ref())
            && !office.iter().any(|o| o.name.eq_ignore_ascii_case(app))
        {
            self.problem(
                "mobile.app",
                format!("{app:?} is not a configured [[office]] app"),
            );
        }
        let tokens = self.tokens(raw.tokens, exchange.mode, mobile.is_some());
        let mut app_preference = std::collections::BTreeMap::new();
        for (ext, apps) in raw.open.app_preference {
            if !ext.starts_with('.') {
                self.problem(
                    "open.app_preference",
                    format!("{ext:?}: extensions start with a dot"),
                );
            }
            for a in &apps {
                if !office.iter().any(|o| o.name.eq_ignore_ascii_case(a)) {
                    self.problem(
                        "open.app_preference",
                        format!("{a:?} is not a configured [[office]] app"),
                    );
                }
            }
            app_preference.insert(ext.to_ascii_lowercase(), apps);
        }
        let open = Open {
            folder_url_base: raw
                .open
                .folder_url_base
                .and_then(|u| self.url("open.folder_url_base", &u)),
            app_preference,
        };
        Some(Config {
            server: server?,
            oidc: oidc?,
            exchange,
            reva: reva?,
            wopiserver: wopiserver?,
            office,
            open,
            internal,
            admin,
            tokens,
            mobile,
            wopi: Wopi {
                normalize_get_lock: raw.wopi.normalize_get_lock,
                reject_expired_tokens: raw.wopi.reject_expired_tokens,
            },
        })
    }

    fn tokens(&mut self, t: file::TokensSection, mode: ExchangeMode, mobile: bool) -> Tokens {
        let wrap = match (t.wrap_tokens, mode) {
            (Some(true), ExchangeMode::Authenticate) => {
                self.problem(
                    "tokens.wrap_tokens",
                    "needs exchange.mode = \"mint\": the gateway renews wopiserver tokens with REVA tokens it mints",
                );
                false
            }
            (Some(w), _) => w,
            (None, m) => m == ExchangeMode::Mint,
        };
        let key = t
            .key_file
            .as_ref()
            .and_then(|p| self.secret("tokens.key_file", p));
        let previous_key = t
            .previous_key_file
            .as_ref()
            .and_then(|p| self.secret("tokens.previous_key_file", p));
        if (wrap || mobile) && key.is_none() && t.key_file.is_none() {
            self.problem(
                "tokens.key_file",
                "required: gateway tokens are on (wrap_tokens defaults to true in mint mode; [mobile] needs them)",
            );
        }
        if key.as_ref().is_some_and(|k| k.expose().len() < 32) {
            self.problem(
                "tokens.key_file",
                "use at least 32 characters of random text",
            );
        }
        let ttl = t.ttl_seconds.unwrap_or(36_000);
        if ttl < 300 {
            self.problem("tokens.ttl_seconds", "must be at least 300");
        }
        Tokens {
            key,
            previous_key,
            wrap,
            ttl: Duration::from_secs(ttl),
        }
    }

    fn mobile(&mut self, m: file::MobileSection, mode: ExchangeMode) -> Option<Mobile> {
        if !m.enabled {
            return None;
        }
        if mode != ExchangeMode::Mint {
            self.problem(
                "mobile.enabled",
                "needs exchange.mode = \"mint\" (gateway tokens are turned into REVA tokens here)",
            );
        }
        if let Some(p) = &m.provider_id
            && (p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            self.problem("mobile.provider_id", "letters, digits and _ only");
        }
        if let Some(s) = &m.url_schemes
            && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).is_err()
        {
            self.problem("mobile.url_schemes", "must be a JSON object");
        }
        Some(Mobile {
            authorization_uri: m
                .authorization_uri
                .as_deref()
                .and_then(|u| self.url("mobile.authorization_uri", u)),
            token_uri: m
                .token_uri
                .as_deref()
                .and_then(|u| self.url("mobile.token_uri", u)),
            provider_id: m.provider_id,
            url_schemes: m.url_schemes,
            is_edu_user: m.is_edu_user,
            license_check_for_edit: m.license_check_for_edit.unwrap_or(true),
            app: m.app,
        })
    }

    fn admin(
        &mut self,
        a: file::AdminSection,
        public: Option<SocketAddr>,
        internal: Option<SocketAddr>,
    ) -> Option<Admin> {
        if !a.enabled {
            return None;
        }
        let listen = match a.listen.parse::<SocketAddr>() {
            Ok(l) if Some(l) == public || Some(l) == internal => {
                self.problem(
                    "admin.listen",
                    "must differ from server.listen and internal.listen",
                );
                None
            }
            Ok(l) if !l.ip().is_loopback() && !a.allow_public => {
                self.problem(
                    "admin.listen",
                    "is not a loopback address; set admin.allow_public = true to expose metrics and readiness",
                );
                None
            }
            Ok(l) => Some(l),
            Err(_) => {
                self.problem(
                    "admin.listen",
                    "must be host:port with a literal IP address",
                );
                None
            }
        };
        let probe_timeout = self.positive("admin.probe_timeout_ms", a.probe_timeout_ms);
        Some(Admin {
            listen: listen?,
            probe_timeout,
        })
    }

    fn internal(
        &mut self,
        i: file::InternalSection,
        public: Option<SocketAddr>,
    ) -> Option<Internal> {
        let listen = match i.listen.parse::<SocketAddr>() {
            Ok(a) if Some(a) == public => {
                self.problem(
                    "internal.listen",
                    "must differ from server.listen: /wopi/iop/* is never public",
                );
                None
            }
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "internal.listen",
                    "must be host:port with a literal IP address",
                );
                None
            }
        };
        let mut allow = Vec::new();
        for net in &i.allow {
            match net.parse::<ipnet::IpNet>() {
                Ok(n) => allow.push(n),
                Err(_) => self.problem("internal.allow", format!("{net:?} is not a CIDR network")),
            }
        }
        Some(Internal {
            listen: listen?,
            allow,
            legacy_open: i.legacy_open,
        })
    }

    fn server(&mut self, s: file::ServerSection) -> Option<Server> {
        let listen = match s.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "server.listen",
                    "must be host:port with a literal IP address",
                );
                None
            }
        };
        if s.threads == 0 {
            self.problem("server.threads", "must be at least 1");
        }
        let log_json = match s.log_format.as_str() {
            "text" => false,
            "json" => true,
            _ => {
                self.problem("server.log_format", "must be \"text\" or \"json\"");
                false
            }
        };
        let tls = s.tls.as_ref().and_then(|t| {
            let (cert_file, key_file) = (self.resolve(&t.cert_file), self.resolve(&t.key_file));
            match crate::tls::load_certified_key(&cert_file, &key_file) {
                Ok(_) => Some(ServerTls {
                    cert_file,
                    key_file,
                }),
                Err(reason) => {
                    self.problem("server.tls.cert_file", reason);
                    None
                }
            }
        });
        let scheme = if s.tls.is_some() { "https" } else { "http" };
        let public_url = match (&s.public_url, listen) {
            (Some(u), _) => self
                .url("server.public_url", u)
                .map(|u| u.as_str().trim_end_matches('/').to_owned()),
            (None, Some(l)) => Some(format!("{scheme}://{l}")),
            (None, None) => None,
        };
        let limits = Limits {
            header_timeout: self.positive("server.header_timeout_ms", s.header_timeout_ms),
            keepalive_timeout: Duration::from_secs(s.keepalive_timeout_seconds),
            body_read_timeout: self.positive("server.body_read_timeout_ms", s.body_read_timeout_ms),
            send_timeout: self.positive("server.send_timeout_ms", s.send_timeout_ms),
            max_header_bytes: s.max_header_bytes,
            max_header_count: s.max_header_count,
            max_uri_bytes: s.max_uri_bytes,
            min_body_rate: s.min_body_rate_bytes_per_second,
            min_body_rate_after: Duration::from_millis(s.min_body_rate_after_ms),
        };
        // pingora parses at most 256 headers (400 above).
        if !(16..=256).contains(&s.max_header_count) {
            self.problem("server.max_header_count", "must be between 16 and 256");
        }
        if s.keepalive_timeout_seconds == 0 {
            self.problem("server.keepalive_timeout_seconds", "must be at least 1");
        }
        // pingora itself refuses heads over 1 MiB; below 4 KiB ordinary WOPI requests fail.
        if !(4096..=1024 * 1024).contains(&s.max_header_bytes) {
            self.problem(
                "server.max_header_bytes",
                "must be between 4096 and 1048576",
            );
        }
        if s.max_uri_bytes < 1024 || s.max_uri_bytes > s.max_header_bytes {
            self.problem(
                "server.max_uri_bytes",
                "must be at least 1024 and at most server.max_header_bytes",
            );
        }
        Some(Server {
            limits,
            public_url: public_url?,
            listen: listen?,
            threads: s.threads.max(1),
            grace_period: Duration::from_secs(s.grace_period_seconds),
            graceful_shutdown_timeout: Duration::from_secs(s.graceful_shutdown_timeout_seconds),
            log_json,
            max_api_body_bytes: s.max_api_body_bytes,
            tls,
        })
    }

    fn oidc(&mut self, o: file::OidcSection) -> Option<Oidc> {
        let issuer_url = self.url("oidc.issuer", &o.issuer);
        let discovery_url = issuer_url.and_then(|_| {
            let trimmed = o.issuer.trim_end_matches('/');
            Url::parse(&format!("{trimmed}/.well-known/openid-configuration")).ok()
        });
        if o.audience.is_empty() {
            self.problem("oidc.audience", "must not be empty");
        }
        let mut algorithms = Vec::new();
        for name in &o.algorithms {
            match crate::auth::parse_allowed_algorithm(name) {
                Ok(a) => algorithms.push(a),
                Err(reason) => self.problem("oidc.algorithms", reason),
            }
        }
        if o.algorithms.is_empty() {
            self.problem("oidc.algorithms", "must list at least one algorithm");
        }
        let http_timeout = self.positive("oidc.http_timeout_ms", o.http_timeout_ms);
        let tls = self.client_tls("oidc", &o.tls);
        Some(Oidc {
            tls,
            issuer: o.issuer,
            discovery_url: discovery_url?,
            audience: o.audience,
            algorithms,
            leeway: Duration::from_secs(o.leeway_seconds),
            jwks_refresh: Duration::from_secs(o.jwks_refresh_seconds.max(1)),
            jwks_min_refetch: Duration::from_secs(o.jwks_min_refetch_seconds),
            http_timeout,
            token_cache_entries: o.token_cache_entries,
            max_token_bytes: o.max_token_bytes,
        })
    }

    fn exchange(&mut self, e: file::ExchangeSection) -> Exchange {
        if e.token_ttl_seconds < 60 {
            self.problem("exchange.token_ttl_seconds", "must be at least 60");
        }
        if e.mode == ExchangeMode::Authenticate && e.authenticate_type.is_empty() {
            self.problem("exchange.authenticate_type", "must not be empty");
        }
        Exchange {
            mode: e.mode,
            token_ttl: Duration::from_secs(e.token_ttl_seconds),
            authenticate_type: e.authenticate_type,
            authenticate_client_id: e.authenticate_client_id,
            claims: e.claims,
        }
    }

    fn reva(&mut self, r: file::RevaSection, mode: ExchangeMode) -> Option<Reva> {
        let gateway = self.url("reva.gateway", &r.gateway);
        let jwt_secret = match (&r.jwt_secret_file, mode) {
            (Some(path), _) => self.secret("reva.jwt_secret_file", path),
            (None, ExchangeMode::Mint) => {
                self.problem(
                    "reva.jwt_secret_file",
                    "required when exchange.mode = \"mint\"",
                );
                None
            }
            (None, ExchangeMode::Authenticate) => None,
        };
        if jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose() == WELL_KNOWN_REVA_SECRET)
        {
            self.problem(
                "reva.jwt_secret_file",
                "holds the public default REVA secret; generate a random one",
            );
        }
        let timeout = self.positive("reva.timeout_ms", r.timeout_ms);
        let connect_timeout = self.positive("reva.connect_timeout_ms", r.connect_timeout_ms);
        let tls = self.client_tls("reva", &r.tls);
        Some(Reva {
            tls,
            gateway: gateway?,
            jwt_secret,
            timeout,
            connect_timeout,
        })
    }

    fn wopiserver(&mut self, w: file::WopiserverSection) -> Option<Wopiserver> {
        let url = self.url("wopiserver.url", &w.url);
        let iop_secret = self.secret("wopiserver.iop_secret_file", &w.iop_secret_file);
        if iop_secret
            .as_ref()
            .is_some_and(|s| s.expose() == WELL_KNOWN_REVA_SECRET)
        {
            self.problem(
                "wopiserver.iop_secret_file",
                "holds a well-known public secret",
            );
        }
        let timeout = self.positive("wopiserver.timeout_ms", w.timeout_ms);
        let connect_timeout = self.positive("wopiserver.connect_timeout_ms", w.connect_timeout_ms);
        let proxy_read_timeout = self.positive(
            "wopiserver.proxy_read_timeout_seconds",
            w.proxy_read_timeout_seconds,
        ) * 1000;
        let tls = self.client_tls("wopiserver", &w.tls);
        Some(Wopiserver {
            tls,
            url: url?,
            iop_secret: iop_secret?,
            timeout,
            connect_timeout,
            proxy_read_timeout,
        })
    }

    fn office(&mut self, apps: Vec<file::OfficeSection>) -> Vec<OfficeApp> {
        if apps.is_empty() {
            self.problem("office", "configure at least one [[office]] app");
        }
        let mut out: Vec<OfficeApp> = Vec::new();
        for (i, a) in apps.into_iter().enumerate() {
            let key = |k: &str| format!("office[{i}].{k}");
            if a.name.is_empty() {
                self.problem(&key("name"), "must not be empty");
            }
            if out.iter().any(|o| o.name == a.name) {
                self.problem(&key("name"), format!("duplicate app name {:?}", a.name));
            }
            let url = self.url(&key("discovery_url"), &a.discovery_url);
            let timeout = self.positive(&key("timeout_ms"), a.timeout_ms);
            if a.refresh_seconds == 0 {
                self.problem(&key("refresh_seconds"), "must be greater than 0");
            }
            let ca_pem = a.ca_file.as_ref().and_then(|p| {
                let full = self.resolve(p);
                match std::fs::read(&full) {
                    Ok(pem)
                        if reqwest::Certificate::from_pem_bundle(&pem)
                            .is_ok_and(|c| !c.is_empty()) =>
                    {
                        Some(pem)
                    }
                    Ok(_) => {
                        self.problem(
                            &key("ca_file"),
                            format!("{} holds no PEM certificate", full.display()),
                        );
                        None
                    }
                    Err(e) => {
                        self.problem(
                            &key("ca_file"),
                            format!("cannot read {}: {e}", full.display()),
                        );
                        None
                    }
                }
            });
            if let Some(discovery_url) = url {
                out.push(OfficeApp {
                    format: a.format,
                    net_zone: a.net_zone,
                    ca_pem,
                    ui_language: a.ui_language,
                    name: a.name,
                    discovery_url,
                    refresh: Duration::from_secs(a.refresh_seconds.max(1)),
                    timeout,
                    proof_keys: a.proof_keys,
                    refetch_min: Duration::from_secs(a.refetch_min_seconds),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
