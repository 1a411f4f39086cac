//! A real OpenID Connect provider for the tests: the npm package `oidc-provider` (pinned in
//! `tests/idp/package-lock.json`), run by Node.js on 127.0.0.1. Tokens come from a genuine
//! authorization-code login (PKCE, login and consent forms, client secret) driven over HTTP.
//!
//! The provider keeps its keys in its state directory, so [`RealIdp::restart`] with another key
//! list is a rotation, and [`RealIdp::stop`] is an outage, on the same issuer and port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The resource indicator (and token audience) the provider issues access tokens for.
pub const RESOURCE: &str = "https://wopigate.test/";
pub const REDIRECT_URI: &str = "https://client.example/callback";

/// The directory holding `package.json`, `package-lock.json` and `server.mjs`.
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/idp")
}

/// Installs the pinned packages once per process (`npm ci`) unless `.ci/run` already did.
pub fn ensure_installed() -> Result<(), String> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut done = INSTALLED.lock().map_err(|_| "install lock poisoned")?;
    if *done {
        return Ok(());
    }
    let dir = package_dir();
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run npm (Node.js ≥ 20.19 is needed): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm ci in {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    *done = true;
    Ok(())
}

/// A key the provider signs with or publishes.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub kid: String,
    /// `RSA` (RS256) or `EC` (ES256 on P-256).
    pub kty: &'static str,
}

impl KeySpec {
    pub fn rsa(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            kty: "RSA",
        }
    }

    pub fn ec(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            kty: "EC",
        }
    }
}

/// A registered client and the algorithm its access tokens are signed with.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub client_id: String,
    pub client_secret: String,
    pub alg: &'static str,
}

pub struct RealIdp {
    pub port: u16,
    pub clients: Vec<ClientSpec>,
    state: tempfile::TempDir,
    cookie_key: String,
    token_ttl_seconds: u64,
    /// Every client's `backchannel_logout_uri` from the next (re)start on.
    pub logout_uri: Option<String>,
    child: Option<Child>,
}

/// A login's session at the provider (its cookies), to end it later.
pub struct IdpSession {
    jar: CookieJar,
}

/// The token endpoint's answer.
#[derive(Debug, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

impl RealIdp {
    /// Starts the provider with `keys` (first key of each type signs) and one client per
    /// algorithm, `RS256` and `ES256`.
    pub async fn start(keys: &[KeySpec], token_ttl_seconds: u64) -> Result<Self, String> {
        ensure_installed()?;
        let secret = |p: &str| format!("{p}-{}", uuid::Uuid::new_v4().simple());
        let clients = ["RS256", "ES256"]
            .into_iter()
            .map(|alg| ClientSpec {
                client_id: format!("office-{}", alg.to_lowercase()),
                client_secret: secret("client-secret"),
                alg,
            })
            .collect::<Vec<_>>();
        for c in &clients {
            super::hygiene::register("OAuth client secret", &c.client_secret);
        }
        let mut idp = Self {
            port: super::free_port(),
            clients,
            state: tempfile::tempdir().map_err(|e| e.to_string())?,
            cookie_key: secret("cookie-key"),
            token_ttl_seconds,
            logout_uri: None,
            child: None,
        };
        idp.restart(keys).await?;
        Ok(idp)
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self, alg: &str) -> &ClientSpec {
        self.clients
            .iter()
            .find(|c| c.alg == alg)
            .expect("a client for this algorithm")
    }

    /// (Re)starts the provider on the same port and issuer, publishing exactly `keys`.
    pub async fn restart(&mut self, keys: &[KeySpec]) -> Result<(), String> {
        self.stop().await;
        let settings = serde_json::json!({
            "port": self.port,
            "issuer": self.issuer(),
            "resource": RESOURCE,
            "state_dir": self.state.path(),
            "cookie_key": self.cookie_key,
            "access_token_ttl": self.token_ttl_seconds,
            "keys": keys.iter().map(|k| serde_json::json!({"kid": k.kid, "kty": k.kty})).collect::<Vec<_>>(),
            "clients": self.clients.iter().map(|c| serde_json::json!({
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "redirect_uri": REDIRECT_URI,
                "alg": c.alg,
                "backchannel_logout_uri": self.logout_uri,
            })).collect::<Vec<_>>(),
        });
        let settings_file = self.state.path().join("settings.json");
        std::fs::write(&settings_file, settings.to_string()).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(self.state.path().join("idp.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new("node")
            .arg(package_dir().join("server.mjs"))
            .arg(&settings_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.child = Some(child);
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("listening ") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            return Err(format!("oidc-provider did not start: {}", self.log()));
        }
        // Keep reading: the provider prints notices on stdout, and a closed pipe would kill it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(())
    }

    /// Stops the provider (SIGKILL through the child handle); its port then refuses connections.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The provider's stderr so far (warnings, grant errors; never tokens).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("idp.log")).unwrap_or_default()
    }

    /// A full authorization-code login of `user` through client `alg`: authorization request with
    /// PKCE, login form, consent form, redirect with the code, token request with the client
    /// secret. Returns the token endpoint's answer.
    pub async fn login(&self, alg: &str, user: &str) -> Result<Tokens, String> {
        Ok(self.login_session(alg, user).await?.0)
    }

    /// [`Self::login`], keeping the provider's session to end it with [`Self::end_session`].
    pub async fn login_session(
        &self,
        alg: &str,
        user: &str,
    ) -> Result<(Tokens, IdpSession), String> {
        let mut session = IdpSession {
            jar: CookieJar::default(),
        };
        let tokens = self.login_in(alg, user, &mut session.jar).await?;
        Ok((tokens, session))
    }

    /// Ends the session as a user signing out (RP-initiated logout, the provider's confirm
    /// form): the provider then calls the clients' back-channel logout URIs before answering.
    pub async fn end_session(&self, session: &mut IdpSession) -> Result<(), String> {
        let http = no_redirects()?;
        let end = format!("{}/session/end", self.issuer());
        let mut req = http.get(&end);
        if let Some(c) = session.jar.header_for("/session/end") {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        session.jar.take(&resp);
        let page = resp.text().await.map_err(|e| e.to_string())?;
        let attr = |name: &str| {
            let start = page.find(&format!("{name}=\""))? + name.len() + 2;
            Some(page[start..start + page[start..].find('"')?].replace("&amp;", "&"))
        };
        let action = attr("action").ok_or("no logout form")?;
        let needle = "name=\"xsrf\" value=\"";
        let xsrf = page
            .find(needle)
            .map(|i| &page[i + needle.len()..])
            .and_then(|rest| Some(rest[..rest.find('"')?].to_owned()))
            .ok_or("no xsrf in the logout form")?;
        let confirm = url::Url::parse(&end)
            .and_then(|b| b.join(&action))
            .map_err(|e| e.to_string())?;
        let mut req = http
            .post(confirm.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("xsrf", &xsrf), ("logout", "yes")]));
        if let Some(c) = session.jar.header_for(confirm.path()) {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        if !(resp.status().is_redirection() || resp.status().is_success()) {
            return Err(format!("logout confirm: {}", resp.status()));
        }
        Ok(())
    }

    async fn login_in(&self, alg: &str, user: &str, jar: &mut CookieJar) -> Result<Tokens, String> {
        let client = self.client(alg);
        let http = no_redirects()?;
        let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = uuid::Uuid::new_v4().simple().to_string();
        let query = form(&[
            ("client_id", &client.client_id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid wopi"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let mut url = format!("{}/auth?{query}", self.issuer());
        let mut post: Option<String> = None;
        // Follow the provider through its interactions; each form is read from the page.
        for _ in 0..12 {
            let path = url::Url::parse(&url)
                .map_err(|e| e.to_string())?
                .path()
                .to_owned();
            let mut req = match post.take() {
                Some(body) => http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
                None => http.get(&url),
            };
            if let Some(cookies) = jar.header_for(&path) {
                req = req.header("cookie", cookies);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            jar.take(&resp);
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or("redirect without Location")?
                    .to_owned();
                if let Some(rest) = location.strip_prefix(REDIRECT_URI) {
                    return self.redeem(&http, client, rest, &state, &verifier).await;
                }
                url = url::Url::parse(&url)
                    .and_then(|base| base.join(&location))
                    .map_err(|e| e.to_string())?
                    .to_string();
                continue;
            }
            let page = resp.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status} at {path}: {page}"));
            }
            let (action, prompt) = read_form(&page).ok_or("no interaction form on the page")?;
            post = Some(match prompt.as_str() {
                "login" => form(&[("prompt", "login"), ("login", user), ("password", "any")]),
                "consent" => form(&[("prompt", "consent")]),
                other => return Err(format!("unexpected prompt {other}")),
            });
            url = action;
        }
        Err("the login did not reach the redirect URI".into())
    }

    async fn redeem(
        &self,
        http: &reqwest::Client,
        client: &ClientSpec,
        redirect_query: &str,
        state: &str,
        verifier: &str,
    ) -> Result<Tokens, String> {
        let params: BTreeMap<String, String> =
            url::form_urlencoded::parse(redirect_query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        if params.get("state").map(String::as_str) != Some(state) {
            return Err(format!("state not returned: {params:?}"));
        }
        if params.get("iss") != Some(&self.issuer()) {
            return Err("iss not returned (RFC 9207)".into());
        }
        let code = params.get("code").ok_or("no code in the redirect")?;
        let resp = http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(&client.client_id, Some(&client.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ]))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("token endpoint: {status} {body}"));
        }
        let tokens: Tokens = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        super::hygiene::register("OIDC access token (oidc-provider)", &tokens.access_token);
        Ok(tokens)
    }
}

impl Drop for RealIdp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The provider's interaction form: its `action` and hidden `prompt` value.
fn read_form(page: &str) -> Option<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].replace("&amp;", "&"))
    };
    let form_tag = &page[page.find("<form")?..];
    let action = attr(&form_tag[..form_tag.find('>')?], "action")?;
    let prompt = page.match_indices("<input").find_map(|(i, _)| {
        let tag = &page[i..i + page[i..].find('>')?];
        (attr(tag, "name")? == "prompt").then(|| attr(tag, "value"))?
    })?;
    Some((action, prompt))
}

fn no_redirects() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// Enough of RFC 6265 for the provider's cookies: name + path scoped, replaced on set, removed
/// when expired.
#[derive(Default)]
struct CookieJar {
    cookies: BTreeMap<(String, String), String>,
}

impl CookieJar {
    fn take(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_owned();
            let mut expired = false;
            for attr in parts {
                let lower = attr.to_ascii_lowercase();
                if let Some(p) = lower.strip_prefix("path=") {
                    path = attr[attr.len() - p.len()..].to_owned();
                }
                expired |= lower.starts_with("expires=thu, 01 jan 1970") || lower == "max-age=0";
            }
            let key = (name.to_owned(), path);
            if expired || value.is_empty() {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, value.to_owned());
            }
        }
    }

    fn header_for(&self, request_path: &str) -> Option<String> {
        let matching: Vec<String> = self
            .cookies
            .iter()
            .filter(|((_, path), _)| {
                request_path == path
                    || request_path.starts_with(&format!("{}/", path.trim_end_matches('/')))
                    || path == "/"
            })
            .map(|((name, _), value)| format!("{name}={value}"))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interaction_form_is_read() {
        let page = r#"<form autocomplete="off" action="http://127.0.0.1:1/interaction/abc?x=1&amp;y=2" method="post">
<input type="hidden" name="prompt" value="login"/><input required type="text" name="login">"#;
        assert_eq!(
            read_form(page),
            Some((
                "http://127.0.0.1:1/interaction/abc?x=1&y=2".into(),
                "login".into()
            ))
        );
        assert_eq!(read_form("<html>no form</html>"), None);
    }
}
