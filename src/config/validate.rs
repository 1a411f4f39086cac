//! Checking a parsed file: the helpers every section uses (URLs, files and secrets resolved
//! against the configuration's folder or systemd's credentials, PEM material read and checked,
//! positive durations), and the whole file section by section ([`super::sections`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::Problem;
use super::file;
use super::types::*;
use crate::secret::Secret;
use crate::tls::ClientTls;

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    pub(super) base: &'a Path,
    pub(super) credentials: Option<&'a Path>,
    pub(super) problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(text: &'a str, base: &'a Path, credentials: Option<&'a Path>) -> Self {
        Self {
            text,
            base,
            credentials,
            problems: Vec::new(),
        }
    }
}

impl Validator<'_> {
    pub(super) fn problem(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            line: super::locate::line_of(self.text, key),
            reason: reason.into(),
        });
    }

    pub(super) fn url(&mut self, key: &str, value: &str) -> Option<Url> {
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
    /// Outside systemd, with `$CREDENTIALS_DIRECTORY` unset, such a path is a problem saying so
    /// (not a file named after the variable).
    pub(super) fn resolve(&mut self, key: &str, path: &Path) -> Option<PathBuf> {
        let Ok(rest) = path.strip_prefix("$CREDENTIALS_DIRECTORY") else {
            return Some(self.base.join(path));
        };
        match self.credentials {
            Some(dir) => Some(dir.join(rest)),
            None => {
                self.problem(
                    key,
                    format!(
                        "{} names a systemd credential, but $CREDENTIALS_DIRECTORY is not set: \
                         run wopigate under systemd with LoadCredential=, or set \
                         CREDENTIALS_DIRECTORY to the folder holding the files",
                        path.display()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn secret(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let full: PathBuf = self.resolve(key, path)?;
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

    pub(super) fn read_pem(&mut self, key: &str, path: &Path) -> Option<(PathBuf, Vec<u8>)> {
        let full = self.resolve(key, path)?;
        match std::fs::read(&full) {
            Ok(pem) => Some((full, pem)),
            Err(e) => {
                self.problem(key, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    /// A PEM CA bundle with at least one certificate.
    pub(super) fn ca_bundle(&mut self, key: &str, path: &Path) -> Option<Vec<u8>> {
        let (full, pem) = self.read_pem(key, path)?;
        if crate::tls::read_certs(&full).is_err() {
            self.problem(key, format!("{} holds no PEM certificate", full.display()));
            return None;
        }
        Some(pem)
    }

    pub(super) fn client_tls(&mut self, section: &str, t: &file::ClientTlsSection) -> ClientTls {
        let ca_pem = t
            .ca_file
            .as_ref()
            .and_then(|p| self.ca_bundle(&format!("{section}.tls.ca_file"), p));
        let identity_pem = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => {
                let cert = self.resolve(&format!("{section}.tls.cert_file"), c);
                let key = self.resolve(&format!("{section}.tls.key_file"), k);
                let (Some(cert), Some(key)) = (cert, key) else {
                    return ClientTls {
                        ca_pem,
                        identity_pem: None,
                    };
                };
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

    pub(super) fn positive(&mut self, key: &str, value: u64) -> Duration {
        if value == 0 {
            self.problem(key, "must be greater than 0");
        }
        Duration::from_millis(value)
    }

    pub(super) fn validate(&mut self, raw: file::FileConfig) -> Option<Config> {
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
        if internal.as_ref().is_some_and(|i| i.allow_forwarded)
            && server
                .as_ref()
                .is_some_and(|s| s.trusted_proxies.is_empty())
        {
            self.problem(
                "internal.allow_forwarded",
                "needs server.trusted_proxies: only a trusted proxy's forwarded chain is believed",
            );
        }
        let admin = self.admin(
            raw.admin,
            server.as_ref().map(|s| s.listen),
            internal.as_ref().map(|i| i.listen),
        );
        let mobile = self.mobile(raw.mobile, exchange.mode);
        let rate_limits = self.rate_limits(raw.rate_limits);
        if let Some(app) = mobile.as_ref().and_then(|m| m.app.as_ref())
            && !office.iter().any(|o| o.name.eq_ignore_ascii_case(app))
        {
            self.problem(
                "mobile.app",
                format!("{app:?} is not a configured [[office]] app"),
            );
        }
        let tokens = self.tokens(raw.tokens, exchange.mode, mobile.is_some());
        let open = self.open(raw.open, &office);
        let store = raw.store.and_then(|s| self.store(s));
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
            rate_limits,
            store,
            wopi: Wopi {
                normalize_get_lock: raw.wopi.normalize_get_lock,
                reject_expired_tokens: raw.wopi.reject_expired_tokens,
                put_relative: raw.wopi.put_relative,
                rename: raw.wopi.rename,
            },
        })
    }

    /// `[store]`: a `redis://` or `rediss://` URL without credentials (they go in a file).
    fn store(&mut self, s: file::StoreSection) -> Option<Store> {
        let url = match Url::parse(&s.url) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host().is_some() => u,
            _ => {
                self.problem(
                    "store.url",
                    "must be a redis:// or rediss:// URL with a host",
                );
                return None;
            }
        };
        if url.password().is_some() {
            self.problem(
                "store.url",
                "must not carry a password: put it in store.password_file",
            );
            return None;
        }
        let password = s
            .password_file
            .as_ref()
            .and_then(|p| self.secret("store.password_file", p));
        Some(Store { url, password })
    }

    /// `[open]`: the folder URL and the app preferences, naming configured apps only.
    fn open(&mut self, raw: file::OpenSection, office: &[crate::config::OfficeApp]) -> Open {
        let mut app_preference = std::collections::BTreeMap::new();
        for (ext, apps) in raw.app_preference {
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
        Open {
            folder_url_base: raw
                .folder_url_base
                .and_then(|u| self.url("open.folder_url_base", &u)),
            app_preference,
        }
    }
}
