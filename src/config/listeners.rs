//! The listener sections: the public server (address, TLS, client limits), the admin and
//! the internal listeners; listeners must not share an address.

use std::net::SocketAddr;
use std::time::Duration;

use super::file;
use super::types::*;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn admin(
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
        let token = a
            .token_file
            .as_ref()
            .and_then(|p| self.secret("admin.token_file", p));
        if token.as_ref().is_some_and(|t| t.expose().len() < 32) {
            self.problem(
                "admin.token_file",
                "use at least 32 characters of random text",
            );
        }
        Some(Admin {
            listen: listen?,
            probe_timeout,
            token,
        })
    }

    pub(super) fn internal(
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
        let allow = self.networks("internal.allow", &i.allow);
        Some(Internal {
            listen: listen?,
            allow,
            legacy_open: i.legacy_open,
            allow_forwarded: i.allow_forwarded,
        })
    }

    pub(super) fn server(&mut self, s: file::ServerSection) -> Option<Server> {
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
        let tls = s.tls.as_ref().and_then(|t| self.server_tls(t));
        let scheme = if s.tls.is_some() { "https" } else { "http" };
        let public_url = match (&s.public_url, listen) {
            (Some(u), _) => self
                .url("server.public_url", u)
                .map(|u| u.as_str().trim_end_matches('/').to_owned()),
            (None, Some(l)) => Some(format!("{scheme}://{l}")),
            (None, None) => None,
        };
        let limits = self.limits(&s);
        let trusted_proxies = self.networks("server.trusted_proxies", &s.trusted_proxies);
        Some(Server {
            limits,
            trusted_proxies,
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

    /// The certificate and key, which must load and match.
    fn server_tls(&mut self, t: &file::ServerTlsSection) -> Option<ServerTls> {
        let cert_file = self.resolve("server.tls.cert_file", &t.cert_file);
        let key_file = self.resolve("server.tls.key_file", &t.key_file);
        let (cert_file, key_file) = (cert_file?, key_file?);
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
    }

    /// What a client may send and how slowly, within what pingora itself accepts.
    fn limits(&mut self, s: &file::ServerSection) -> Limits {
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
        Limits {
            header_timeout: self.positive("server.header_timeout_ms", s.header_timeout_ms),
            keepalive_timeout: Duration::from_secs(s.keepalive_timeout_seconds),
            body_read_timeout: self.positive("server.body_read_timeout_ms", s.body_read_timeout_ms),
            send_timeout: self.positive("server.send_timeout_ms", s.send_timeout_ms),
            max_header_bytes: s.max_header_bytes,
            max_header_count: s.max_header_count,
            max_uri_bytes: s.max_uri_bytes,
            min_body_rate: s.min_body_rate_bytes_per_second,
            min_body_rate_after: Duration::from_millis(s.min_body_rate_after_ms),
        }
    }

    /// CIDR networks; each one that does not parse is a problem.
    fn networks(&mut self, key: &str, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for net in list {
            match net.parse::<ipnet::IpNet>() {
                Ok(n) => out.push(n),
                Err(_) => self.problem(key, format!("{net:?} is not a CIDR network")),
            }
        }
        out
    }
}
