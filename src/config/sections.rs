//! Each section of the file checked and turned into its validated form; cross-section rules
//! (listeners that must differ, modes that need a secret) where the section is read.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::file::{self, ExchangeMode};
use super::types::*;
use super::validate::Validator;
use crate::secret::WELL_KNOWN_REVA_SECRET;

impl Validator<'_> {
    pub(super) fn mobile(&mut self, m: file::MobileSection, mode: ExchangeMode) -> Option<Mobile> {
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

    pub(super) fn oidc(&mut self, o: file::OidcSection) -> Option<Oidc> {
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
            match parse_allowed_algorithm(name) {
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
            logout_clients: o.logout_clients,
        })
    }

    pub(super) fn exchange(&mut self, e: file::ExchangeSection) -> Exchange {
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

    pub(super) fn reva(&mut self, r: file::RevaSection, mode: ExchangeMode) -> Option<Reva> {
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

    pub(super) fn wopiserver(&mut self, w: file::WopiserverSection) -> Option<Wopiserver> {
        let instances = self.wopiserver_instances(&w);
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
        let hc = &w.health_check;
        let health_check = HealthCheck {
            interval: self.positive("wopiserver.health_check.interval_ms", hc.interval_ms),
            timeout: self.positive("wopiserver.health_check.timeout_ms", hc.timeout_ms),
            healthy_after: hc.healthy_after,
            unhealthy_after: hc.unhealthy_after,
        };
        for (key, n) in [
            ("wopiserver.health_check.healthy_after", hc.healthy_after),
            (
                "wopiserver.health_check.unhealthy_after",
                hc.unhealthy_after,
            ),
        ] {
            if !(1..=100).contains(&n) {
                self.problem(key, "must be between 1 and 100 consecutive probes");
            }
        }
        if hc.timeout_ms >= hc.interval_ms {
            self.problem(
                "wopiserver.health_check.timeout_ms",
                "must be shorter than interval_ms",
            );
        }
        let capacity = Capacity {
            max_in_flight: w.max_in_flight,
            queue: w.queue,
            queue_timeout: Duration::from_millis(w.queue_timeout_ms),
        };
        if w.max_in_flight > 0 && w.queue > 0 && w.queue_timeout_ms == 0 {
            self.problem(
                "wopiserver.queue_timeout_ms",
                "must be greater than 0 when queue is",
            );
        }
        let eject_for = self.positive("wopiserver.eject_seconds", w.eject_seconds) * 1000;
        Some(Wopiserver {
            tls,
            instances: instances?,
            capacity,
            eject_for,
            health_check,
            iop_secret: iop_secret?,
            timeout,
            connect_timeout,
            proxy_read_timeout,
        })
    }

    /// `url` (one instance, `default`) or `[[wopiserver.instances]]`: unique names fit for a
    /// metric label, unique URLs, at most [`MAX_WOPISERVER_INSTANCES`].
    fn wopiserver_instances(
        &mut self,
        w: &file::WopiserverSection,
    ) -> Option<Vec<WopiserverInstance>> {
        let listed: Vec<(String, String, String)> = match (&w.url, w.instances.is_empty()) {
            (Some(url), true) => vec![("default".into(), url.clone(), "wopiserver.url".into())],
            (None, false) => w
                .instances
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    (
                        x.name.clone(),
                        x.url.clone(),
                        format!("wopiserver.instances[{i}].url"),
                    )
                })
                .collect(),
            (Some(_), false) => {
                self.problem(
                    "wopiserver.url",
                    "set either url or [[wopiserver.instances]], not both",
                );
                return None;
            }
            (None, true) => {
                self.problem(
                    "wopiserver",
                    "needs url or at least one [[wopiserver.instances]]",
                );
                return None;
            }
        };
        if listed.len() > MAX_WOPISERVER_INSTANCES {
            self.problem(
                "wopiserver.instances",
                format!("at most {} instances", MAX_WOPISERVER_INSTANCES),
            );
        }
        let mut out: Vec<WopiserverInstance> = Vec::new();
        let mut ok = true;
        for (i, (name, url, url_key)) in listed.into_iter().enumerate() {
            let name_key = format!("wopiserver.instances[{i}].name");
            let fit = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !fit {
                self.problem(
                    &name_key,
                    format!("{name:?}: 1 to 32 of A-Z, a-z, 0-9, - and _ (a metric label)"),
                );
                ok = false;
            }
            if out.iter().any(|o| o.name == name) {
                self.problem(&name_key, format!("duplicate instance name {name:?}"));
                ok = false;
            }
            let Some(url) = self.url(&url_key, &url) else {
                ok = false;
                continue;
            };
            if out.iter().any(|o| o.url == url) {
                self.problem(&url_key, format!("{url} is listed twice"));
                ok = false;
            }
            out.push(WopiserverInstance { name, url });
        }
        if out.iter().any(|o| o.url.scheme() != out[0].url.scheme()) {
            self.problem(
                "wopiserver.instances",
                "all instances use the same scheme (one [wopiserver.tls] for all)",
            );
            ok = false;
        }
        ok.then_some(out)
    }

    pub(super) fn rate_limits(&mut self, r: file::RateLimitsSection) -> RateLimitsConfig {
        if r.window_seconds == 0 || r.window_seconds > 3600 {
            self.problem(
                "rate_limits.window_seconds",
                "must be between 1 and 3600 seconds",
            );
        }
        RateLimitsConfig {
            window: Duration::from_secs(r.window_seconds),
            open_per_user: r.open_per_user,
            open_per_client: r.open_per_client,
            bootstrap_per_user: r.bootstrap_per_user,
            bootstrap_per_client: r.bootstrap_per_client,
            wopi_per_client: r.wopi_per_client,
        }
    }

    pub(super) fn office(&mut self, apps: Vec<file::OfficeSection>) -> Vec<OfficeApp> {
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
                let full = self.resolve(&key("ca_file"), p)?;
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

/// Algorithms an operator may allow: asymmetric only. HS* with a public key is the classic
/// confusion attack (security.md J2), and `none` does not parse at all.
fn parse_allowed_algorithm(name: &str) -> Result<Algorithm, String> {
    use Algorithm::*;
    let alg: Algorithm = name
        .parse()
        .map_err(|_| format!("unknown algorithm {name:?}"))?;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA => Ok(alg),
        HS256 | HS384 | HS512 => Err(format!(
            "{name} is symmetric; only asymmetric algorithms are allowed for OIDC tokens"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_unknown_algorithms_are_refused() {
        assert_eq!(parse_allowed_algorithm("RS256"), Ok(Algorithm::RS256));
        assert_eq!(parse_allowed_algorithm("ES256"), Ok(Algorithm::ES256));
        assert!(parse_allowed_algorithm("HS256").is_err());
        assert!(parse_allowed_algorithm("none").is_err());
        assert!(parse_allowed_algorithm("rs256").is_err());
    }
}
