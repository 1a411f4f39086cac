//! Fake CS3 WOPI server that behaves like cs3org/wopiserver v11.5.0 (cs3 storage) wherever the
//! gateway depends on it (cs3-wopiserver.md §5–§10): `openinapp` checks the IOP bearer and
//! `TokenHeader`, Stats the file in REVA with that token, applies the server's view-mode
//! downgrades (`forced-viewmode-reason`) and answers the real JSON with an HS256 WOPI token that
//! carries the REVA token in `userid` and names the file by its **path** (`filename`). Every WOPI
//! call looks the file up by that path, through the REVA gateway over CS3 gRPC with the REVA
//! token, so a REVA outage, a rename or a removed share hits WOPI traffic as it does for real.
//! `GET /wopi` serves the real health page markup, `FAIL` when REVA's `ListAuthProviders` fails.
//! RenameFile renames by path, whatever `enablerename` says (that only fills CheckFileInfo), with
//! the real server's empty target for a requested name containing a dot; Lock writes the
//! LibreOffice lock file `.~lock.<name>#` next to ODF files and Unlock removes it.
//!
//! Where it still differs from v11.5.0, and why that cannot matter to the gateway:
//! - File contents move through the shared [`Tree`], not REVA's data gateway
//!   (`InitiateFileDownload`/`InitiateFileUpload` and plain HTTP): the gateway never sees that
//!   hop. The REVA checks those calls make are kept: every read and write first Stats the path
//!   in REVA with the session's REVA token, and a write needs `initiate_file_upload`, a read
//!   `initiate_file_download`, in the permissions REVA returns (else 500, as the real one
//!   answers a refused upload or download).
//! - Locks live in a map shared by sibling instances, keyed by REVA's resource id, instead of
//!   REVA's lock API (the proto subset has no `SetLock`): like REVA's locks they belong to the
//!   file, survive a rename and are seen by every instance. The LibreOffice lock file is written
//!   (through REVA `TouchFile`) but never read back: the real server reads it to detect a
//!   LibreOffice desktop user, which no test plays.
//! - `detectexternallocks` is always on, `disablemswriteodf` off, `downloadurl` set,
//!   `hostediturl` unset; `enablerename` is off unless [`FakeWopiserver::set_enable_rename`].
//! - CheckFileInfo carries the properties the gateway reads or rewrites, not the branding,
//!   breadcrumb and postMessage extras.
//! - No proof-key validation and no `X-WOPI-TimeStamp` check: the gateway does both before a
//!   request reaches it (the real one checks only the timestamp).
//! - Conflict files, the recovery spool and `/wopi/iop/*` routes other than `openinapp` are
//!   absent: the gateway never calls them (the public listener refuses `/wopi/iop/*`).
//! - [`FakeWopiserver::set_storage_unreachable`] plays a network partition between this instance
//!   and REVA (its REVA calls fail as unavailable) without stopping the shared fake REVA.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::Running;
use super::tree::{Content, Tree};
use wopigate::pb::cs3::storage::provider::v1beta1::{
    Reference, ResourceId, ResourceInfo, ResourceType,
};
use wopigate::reva::{RevaClient, RevaError};
use wopigate::secret::Secret;

mod files;
mod health;
mod openinapp;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// Bytes of body received (PutFile), and whether the body ended cleanly.
    pub body_len: u64,
    pub body_complete: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Everything the request carried as one string, for "never saw this secret" checks.
    pub fn haystack(&self) -> String {
        let mut s = format!("{} {}?{}\n", self.method, self.path, self.query);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s
    }
}

/// Claims of the wopiserver's access token (v9.5–v11.5 layout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WopiClaims {
    pub userid: String,
    pub wopiuser: String,
    pub usertype: String,
    /// The file's path in REVA: every WOPI call of the session addresses the file by it.
    pub filename: String,
    pub fileid: String,
    pub username: String,
    pub viewmode: String,
    pub folderurl: String,
    pub endpoint: String,
    pub appname: String,
    pub appediturl: String,
    pub appviewurl: String,
    pub trace: String,
    pub exp: u64,
    pub iss: String,
}

struct Lock {
    id: String,
    /// The office app that took it (REVA's lock holder): another app's lock downgrades opens.
    app: String,
    until: Instant,
}

type LockKey = (String, String);

struct Inner {
    iop_secret: String,
    wopi_secret: String,
    wopi_url: String,
    token_validity: Duration,
    /// File contents (REVA's data gateway); metadata and permissions come from REVA.
    tree: Tree,
    /// Replaced when a test moves REVA (to TLS, say), as an operator reconfigures it.
    reva: std::sync::RwLock<RevaClient>,
    requests: Mutex<Vec<Recorded>>,
    /// Shared by sibling instances and keyed by resource id: REVA's locks belong to the file.
    locks: Arc<Mutex<HashMap<LockKey, Lock>>>,
    /// `[general] enablerename`: only what CheckFileInfo says, never a refusal.
    enable_rename: AtomicBool,
    /// A partition between this instance and REVA: its REVA calls fail as unavailable.
    storage_cut: AtomicBool,
    /// Probes of `GET /wopi` are counted, not recorded with the WOPI traffic.
    health_probes: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeWopiserver {
    inner: Arc<Inner>,
}

/// Python's `quote_plus` plus `-` (encoded since wopiserver v8.2).
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'~');

/// The real server's answer to any storage failure it does not name.
const IO_ERROR: &str = "I/O Error, please contact support";

/// `[apps] codeofficetypes`: the types that get a LibreOffice lock file.
const CODE_TYPES: [&str; 3] = [".odt", ".ods", ".odp"];

/// Types a non-Collabora app may only view (`generateAccessToken`).
const LEGACY_TYPES: [&str; 6] = [".doc", ".dot", ".xls", ".ppt", ".pps", ".csv"];

fn unquote_plus(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [("content-type", "text/html; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

fn json_msg(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": msg }))).into_response()
}

/// `os.path.splitext(path)[1]`: the extension with its dot, or empty.
fn extension(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.rfind('.') {
        Some(i) if i > 0 && base[..i].chars().any(|c| c != '.') => &base[i..],
        _ => "",
    }
}

fn dirname(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `getLibreOfficeLockName`.
fn libreoffice_lock_name(path: &str) -> String {
    format!("{}/.~lock.{}#", dirname(path), basename(path))
}

fn by_path(path: &str) -> Reference {
    Reference {
        resource_id: None,
        path: path.to_owned(),
    }
}

fn lock_key(id: &ResourceId) -> LockKey {
    (id.storage_id.clone(), id.opaque_id.clone())
}

impl FakeWopiserver {
    /// `wopi_url` is the public origin office apps use (the gateway's), as `[general] wopiurl`;
    /// `reva` the REVA gateway it reaches with each session's REVA token, as `[cs3] revagateway`.
    pub fn new(
        iop_secret: &str,
        wopi_secret: &str,
        wopi_url: &str,
        tree: Tree,
        reva: &url::Url,
    ) -> Self {
        Self::with_locks(
            iop_secret,
            wopi_secret,
            wopi_url,
            tree,
            reva,
            Arc::new(Mutex::new(HashMap::new())),
        )
    }

    fn with_locks(
        iop_secret: &str,
        wopi_secret: &str,
        wopi_url: &str,
        tree: Tree,
        reva: &url::Url,
        locks: Arc<Mutex<HashMap<LockKey, Lock>>>,
    ) -> Self {
        // `[cs3] grpctimeout` defaults to 10 s.
        let timeout = Duration::from_secs(10);
        let reva = RevaClient::new(reva, timeout, timeout, &wopigate::tls::ClientTls::default())
            .expect("a usable REVA address for the fake wopiserver");
        Self {
            inner: Arc::new(Inner {
                iop_secret: iop_secret.into(),
                wopi_secret: wopi_secret.into(),
                wopi_url: wopi_url.trim_end_matches('/').into(),
                token_validity: Duration::from_secs(86400),
                tree,
                reva: std::sync::RwLock::new(reva),
                requests: Mutex::new(Vec::new()),
                locks,
                enable_rename: AtomicBool::new(false),
                storage_cut: AtomicBool::new(false),
                health_probes: AtomicUsize::new(0),
            }),
        }
    }

    /// Another instance of the same deployment: same secrets, REVA, storage and locks, its own
    /// request log, settings and connection to REVA.
    pub fn sibling(&self, reva: &url::Url) -> Self {
        let i = &self.inner;
        let s = Self::with_locks(
            &i.iop_secret,
            &i.wopi_secret,
            &i.wopi_url,
            i.tree.clone(),
            reva,
            i.locks.clone(),
        );
        s.set_enable_rename(i.enable_rename.load(Relaxed));
        s
    }

    /// `[general] enablerename`: fills `SupportsRename`/`UserCanRename` in CheckFileInfo. Like
    /// v11.5.0, RenameFile is executed either way.
    pub fn set_enable_rename(&self, on: bool) {
        self.inner.enable_rename.store(on, Relaxed);
    }

    /// Cuts (or restores) this instance's connection to REVA: its health page says FAIL and
    /// WOPI calls fail as the real server's do when REVA cannot be reached.
    pub fn set_storage_unreachable(&self, cut: bool) {
        self.inner.storage_cut.store(cut, Relaxed);
    }

    /// Points this instance at REVA elsewhere (`[cs3] revagateway`, `sslverify`).
    pub fn set_reva(&self, reva: &url::Url, tls: &wopigate::tls::ClientTls) {
        let timeout = Duration::from_secs(10);
        let client = RevaClient::new(reva, timeout, timeout, tls).expect("a usable REVA address");
        *self.inner.reva.write().unwrap() = client;
    }

    /// How many times `GET /wopi` was asked.
    pub fn health_probes(&self) -> usize {
        self.inner.health_probes.load(Relaxed)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.inner.requests.lock().unwrap().clear();
    }

    /// The lock held on a file (by REVA resource id), as the storage has it.
    pub fn lock_of(&self, storage_id: &str, opaque_id: &str) -> Option<String> {
        self.current_lock(&(storage_id.to_owned(), opaque_id.to_owned()))
            .map(|l| l.0)
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        super::serve_http(self.router(), addr).await
    }

    /// Over TLS; with `client_ca_pem`, only clients with a certificate from that CA get through.
    pub async fn serve_tls(
        &self,
        addr: SocketAddr,
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> std::io::Result<Running> {
        super::serve_tls(self.router(), addr, cert_pem, key_pem, client_ca_pem).await
    }

    /// The routes, for serving elsewhere (the load benchmark puts fast file routes in front).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/wopi", get(health::health))
            .route("/wopi/iop/openinapp", get(openinapp::openinapp))
            .route(
                "/wopi/files/{id}",
                get(files::check_file_info).post(files::file_op),
            )
            .route(
                "/wopi/files/{id}/contents",
                get(files::get_file).post(files::put_file),
            )
            .fallback(fallback)
            .with_state(self.clone())
    }

    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
        let mut g = self.inner.requests.lock().unwrap();
        g.push(Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body_len: 0,
            body_complete: true,
        });
        g.len() - 1
    }

    /// Validates a WOPI token like the wopiserver: HS256 with `wopisecret`, `exp`, `iss`.
    pub fn verify(&self, token: &str) -> Option<WopiClaims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        v.leeway = 0;
        let c = jsonwebtoken::decode::<WopiClaims>(
            token,
            &DecodingKey::from_secret(self.inner.wopi_secret.as_bytes()),
            &v,
        )
        .ok()?
        .claims;
        c.iss.contains("cs3org:wopiserver").then_some(c)
    }

    // The error is the finished HTTP answer; boxing it would only add noise in a test double.
    #[allow(clippy::result_large_err)]
    fn claims_from(&self, uri: &Uri) -> Result<WopiClaims, Response> {
        let claims = Some(token_of(uri))
            .filter(|t| !t.is_empty())
            .and_then(|t| self.verify(&t))
            .ok_or_else(|| text(StatusCode::UNAUTHORIZED, "Invalid access token"))?;
        // cs3client refuses an expired REVA token locally, which surfaces as a 500.
        if wopigate::tokens::reva::unverified_exp(&claims.userid).is_none_or(|e| e < now()) {
            return Err(json_msg(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
            ));
        }
        Ok(claims)
    }

    fn reva(&self) -> Result<RevaClient, RevaError> {
        if self.inner.storage_cut.load(Relaxed) {
            return Err(RevaError::Unavailable);
        }
        Ok(self.inner.reva.read().unwrap().clone())
    }

    /// `statx`: a file (REVA's Stat accepts files only) with the session's REVA token.
    async fn stat(&self, token: &str, reference: Reference) -> Result<ResourceInfo, RevaError> {
        let info = self
            .reva()?
            .stat_ref(&Secret::new(token), reference)
            .await?;
        match info.r#type() {
            ResourceType::File | ResourceType::Symlink => Ok(info),
            _ => Err(RevaError::NotFound),
        }
    }
}

/// The raw `access_token` value of a request.
fn token_of(uri: &Uri) -> String {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn fallback(
    State(s): State<FakeWopiserver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    s.record(&method, &uri, &headers);
    text(StatusCode::NOT_FOUND, "Not Found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_helpers_match_python() {
        assert_eq!(extension("/home/a.odt"), ".odt");
        assert_eq!(extension("/home/.bashrc"), "");
        assert_eq!(extension("/home/noext"), "");
        assert_eq!(
            libreoffice_lock_name("/home/x/a.odt"),
            "/home/x/.~lock.a.odt#"
        );
    }
}
