//! The upstream sections of `wopigate.toml`: REVA, the wopiserver instances and their health
//! checks, and the office apps.

use std::path::PathBuf;

use serde::Deserialize;

use super::ClientTlsSection;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevaSection {
    /// REVA gateway gRPC endpoint, `http://host:port` or `https://host:port`.
    pub gateway: String,
    /// File holding the REVA JWT secret; required in `mint` mode only.
    pub jwt_secret_file: Option<PathBuf>,
    #[serde(default = "default_reva_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// `[reva.tls]`, used when `gateway` is `https://`.
    #[serde(default)]
    pub tls: ClientTlsSection,
}

fn default_reva_timeout() -> u64 {
    5000
}
fn default_connect_timeout() -> u64 {
    2000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WopiserverSection {
    /// Base URL of the CS3 WOPI server, e.g. `http://127.0.0.1:8880`: one instance named
    /// `default`. Alternative to `[[wopiserver.instances]]`.
    pub url: Option<String>,
    /// `[[wopiserver.instances]]`: several instances, each file served by one of them.
    #[serde(default)]
    pub instances: Vec<WopiserverInstanceSection>,
    /// Concurrent requests each instance is sent; 0: no cap.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Requests that may wait for a busy instance; beyond, 503 with `Retry-After`.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Longest wait for a busy instance, ms; then 503 with `Retry-After`.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout_ms: u64,
    /// How long an instance that refused a connection stays out of rotation, seconds.
    #[serde(default = "default_eject_seconds")]
    pub eject_seconds: u64,
    /// `[wopiserver.health_check]`: the active probe of each instance's `GET /wopi`.
    #[serde(default)]
    pub health_check: HealthCheckSection,
    /// File holding the IOP secret (the wopiserver's `iopsecretfile`).
    pub iop_secret_file: PathBuf,
    /// Deadline of the `openinapp` call, ms.
    #[serde(default = "default_wopiserver_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Longest silence from the wopiserver while proxying WOPI traffic, seconds (large saves).
    #[serde(default = "default_proxy_read_timeout")]
    pub proxy_read_timeout_seconds: u64,
    /// `[wopiserver.tls]`, used when `url` is `https://` (open calls and proxied WOPI traffic).
    #[serde(default)]
    pub tls: ClientTlsSection,
}

fn default_proxy_read_timeout() -> u64 {
    300
}

fn default_max_in_flight() -> usize {
    64
}

fn default_queue() -> usize {
    64
}

fn default_queue_timeout() -> u64 {
    2_000
}

fn default_eject_seconds() -> u64 {
    10
}

/// One wopiserver instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WopiserverInstanceSection {
    /// Short name: logs and the `wopiserver` metric label (`[A-Za-z0-9_-]`, at most 32).
    pub name: String,
    pub url: String,
}

/// Active health checks of the wopiserver instances.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckSection {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive passed probes that bring an unhealthy instance back.
    pub healthy_after: usize,
    /// Consecutive failed probes that take a healthy instance out.
    pub unhealthy_after: usize,
}

impl Default for HealthCheckSection {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            timeout_ms: 2_000,
            healthy_after: 2,
            unhealthy_after: 3,
        }
    }
}

fn default_wopiserver_timeout() -> u64 {
    10_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeSection {
    /// `appname` sent to the wopiserver (`Collabora`, `OnlyOffice`, `Microsoft Office Online`).
    pub name: String,
    /// Full discovery URL, e.g. `https://collabora.example/hosting/discovery`.
    pub discovery_url: String,
    /// `discovery` (WOPI `/hosting/discovery` XML) or `cbox-endpoints` (a legacy wopiserver's
    /// unauthenticated `/wopi/cbox/endpoints` JSON, cs3-wopiserver.md §4).
    #[serde(default = "default_format")]
    pub format: DiscoveryFormat,
    /// `<net-zone>` to use; default: the one named `external…`, else the first.
    pub net_zone: Option<String>,
    /// PEM file with the only CA(s) trusted for this app's https discovery (pinning).
    pub ca_file: Option<PathBuf>,
    /// Value for the `UI_LLCC`/`DC_LLCC` placeholders (e.g. `en-US`); unset: removed.
    pub ui_language: Option<String>,
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    #[serde(default = "super::default_http_timeout")]
    pub timeout_ms: u64,
    /// Proof-key checking for this app's requests: `enforce`, `log-only` or `off`.
    #[serde(default = "default_proof_mode")]
    pub proof_keys: ProofMode,
    /// Minimum seconds between early refetches (after a proof failure).
    #[serde(default = "default_refetch_min")]
    pub refetch_min_seconds: u64,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveryFormat {
    Discovery,
    CboxEndpoints,
}

fn default_format() -> DiscoveryFormat {
    DiscoveryFormat::Discovery
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProofMode {
    Enforce,
    LogOnly,
    Off,
}

fn default_proof_mode() -> ProofMode {
    ProofMode::Enforce
}
fn default_refetch_min() -> u64 {
    60
}

fn default_refresh() -> u64 {
    3600
}
