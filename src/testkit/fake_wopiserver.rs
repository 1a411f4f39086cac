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
use crate::pb::cs3::storage::provider::v1beta1::{
    Reference, ResourceId, ResourceInfo, ResourceType,
};
use crate::reva::{RevaClient, RevaError};
use crate::secret::Secret;

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
        let reva = RevaClient::new(reva, timeout, timeout, &crate::tls::ClientTls::default())
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
    pub fn set_reva(&self, reva: &url::Url, tls: &crate::tls::ClientTls) {
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
            .route("/wopi", get(health))
            .route("/wopi/iop/openinapp", get(openinapp))
            .route("/wopi/files/{id}", get(check_file_info).post(file_op))
            .route("/wopi/files/{id}/contents", get(get_file).post(put_file))
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
        if crate::tokens::reva::unverified_exp(&claims.userid).is_none_or(|e| e < now()) {
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

/// One WOPI request to the double, as the wopiserver takes it: recorded first, then its token
/// verified and its file Stat-ed in REVA **by the token's path** (the path id is ignored, as the
/// real server does); what fails is answered as the wopiserver answers it.
struct WopiCall {
    s: FakeWopiserver,
    /// Its place among the recorded requests.
    index: usize,
    claims: WopiClaims,
    /// The file as REVA sees it now, for this user.
    info: ResourceInfo,
    key: LockKey,
    uri: Uri,
    headers: HeaderMap,
}

impl axum::extract::FromRequestParts<FakeWopiserver> for WopiCall {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &FakeWopiserver,
    ) -> Result<Self, Response> {
        let index = s.record(&parts.method, &parts.uri, &parts.headers);
        let claims = s.claims_from(&parts.uri)?;
        let info = match s.stat(&claims.userid, by_path(&claims.filename)).await {
            Ok(info) => info,
            Err(RevaError::NotFound | RevaError::PermissionDenied) => {
                return Err(json_msg(StatusCode::NOT_FOUND, "File not found"));
            }
            // CheckFileInfo calls every storage error "not found"; the others an I/O error.
            Err(_) if parts.method == Method::GET && !parts.uri.path().ends_with("/contents") => {
                return Err(json_msg(StatusCode::NOT_FOUND, "File not found"));
            }
            Err(_) => return Err(json_msg(StatusCode::INTERNAL_SERVER_ERROR, IO_ERROR)),
        };
        let key = lock_key(&info.id.clone().unwrap_or_default());
        Ok(Self {
            s: s.clone(),
            index,
            claims,
            info,
            key,
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

impl WopiCall {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn read_write(&self) -> bool {
        self.claims.viewmode == "VIEW_MODE_READ_WRITE"
    }

    fn version(&self) -> String {
        format!("v{}", self.info.etag.trim_matches('"'))
    }

    fn perms(&self) -> crate::pb::cs3::storage::provider::v1beta1::ResourcePermissions {
        self.info.permission_set.unwrap_or_default()
    }
}

/// The raw `access_token` value of a request.
fn token_of(uri: &Uri) -> String {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// v11.5.0's index page, with its markup (`src/wopiserver.py`); always 200, the text carries
/// the verdict of the cs3 probe, `ListAuthProviders` without a token.
async fn health(State(s): State<FakeWopiserver>) -> Response {
    s.inner.health_probes.fetch_add(1, Relaxed);
    let verdict = match s.reva() {
        Ok(reva) if reva.probe().await.is_ok() => "OK",
        _ => "FAIL",
    };
    text(
        StatusCode::OK,
        &format!(
            r#"
      <html><head><title>ScienceMesh WOPI Server</title></head>
      <body>
      <div align="center" style="color:#000080; padding-top:50px; font-family:Verdana; size:11">
      This is the ScienceMesh IOP <a href=https://github.com/cs3org/wopiserver#readme>WOPI</a> server
      to support online office-like editors.<br>
      The service includes support for non-WOPI-native apps through a bridge extension.<br>
      To use this service, please log in to your EFSS Storage and click on a supported document.</div>
      <div style="position: absolute; bottom: 10px; left: 10px; width: 99%;"><hr>
      <i>ScienceMesh WOPI Server fake at 127.0.0.1. Powered by Flask 3.1.1 for Python 3.11.7.
         Storage type: <span style="font-family:monospace">cs3</span>.
         Health status: <span style="font-family:monospace">{verdict}</span>.</i>
      </body>
      </html>
      "#
        ),
    )
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

/// `generateAccessToken`'s downgrades: legacy types outside Collabora, and a lock held by
/// another app. The mode that stays and why it changed.
fn downgrade(
    viewmode: &str,
    path: &str,
    size: u64,
    appname: &str,
    held_by: Option<&str>,
) -> (String, String) {
    let mut vm = viewmode.to_owned();
    let mut reason = String::new();
    let ext = extension(path).to_lowercase();
    if !appname.contains("Collabora")
        && vm == "VIEW_MODE_READ_WRITE"
        && LEGACY_TYPES.contains(&ext.as_str())
    {
        vm = "VIEW_MODE_READ_ONLY".into();
        reason = "App does not support edit for this file type".into();
    }
    if matches!(vm.as_str(), "VIEW_MODE_READ_WRITE" | "VIEW_MODE_PREVIEW")
        && let Some(holder) = held_by.filter(|h| *h != appname)
    {
        vm = "VIEW_MODE_READ_ONLY".into();
        reason =
            format!("This file cannot be edited in {appname}, use app {holder} to edit instead");
    }
    if vm == "VIEW_MODE_PREVIEW" && size == 0 {
        vm = "VIEW_MODE_READ_WRITE".into();
    }
    (vm, reason)
}

async fn openinapp(
    State(s): State<FakeWopiserver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    s.record(&method, &uri, &headers);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {}", s.inner.iop_secret) {
        return text(StatusCode::UNAUTHORIZED, "Client not authorized");
    }
    let Some(reva_token) = headers
        .get("tokenheader")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    else {
        return text(StatusCode::UNAUTHORIZED, "Client not authorized");
    };
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    // The real server unquotes these six a second time (cs3-wopiserver.md §5.1).
    let twice = |k: &str| q.get(k).map(|v| unquote_plus(v)).unwrap_or_default();
    let Some(fileid) = q.get("fileid").filter(|f| !f.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "Missing fileid argument");
    };
    let viewmode = q.get("viewmode").cloned().unwrap_or_default();
    if !viewmode.starts_with("VIEW_MODE_") {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing or invalid viewmode argument",
        );
    }
    let (appname, appurl) = (
        twice("appname"),
        twice("appurl").trim_end_matches('/').to_owned(),
    );
    if appname.is_empty() || appurl.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing appname or appurl arguments",
        );
    }
    let appviewurl = Some(twice("appviewurl"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| appurl.clone());
    let endpoint = q
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| "default".into());
    let (storage, space) = endpoint.split_once('$').unwrap_or((&endpoint, ""));
    // `statx` by id with the caller's REVA token: REVA decides what the user may see.
    let reference = Reference {
        resource_id: Some(ResourceId {
            storage_id: storage.to_owned(),
            opaque_id: fileid.clone(),
            space_id: space.to_owned(),
        }),
        path: ".".into(),
    };
    let Ok(info) = s.stat(reva_token, reference).await else {
        return text(
            StatusCode::NOT_FOUND,
            "Remote error, file not found or file is a directory",
        );
    };
    let held_by = info
        .id
        .as_ref()
        .and_then(|id| s.current_lock(&lock_key(id)))
        .map(|(_, app)| app);
    let (vm, reason) = downgrade(
        &viewmode,
        &info.path,
        info.size,
        &appname,
        held_by.as_deref(),
    );
    let userid = q
        .get("userid")
        .cloned()
        .unwrap_or_else(|| "anonymous".into());
    let claims = WopiClaims {
        userid: reva_token.to_owned(),
        wopiuser: format!(
            "{}!{}",
            userid.split('@').next().unwrap_or_default(),
            userid
        ),
        usertype: q
            .get("usertype")
            .cloned()
            .unwrap_or_else(|| "regular".into()),
        filename: info.path.clone(),
        fileid: fileid.clone(),
        username: twice("username"),
        viewmode: vm.clone(),
        folderurl: Some(twice("folderurl"))
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "/".into()),
        endpoint: endpoint.clone(),
        appname,
        appediturl: appurl.clone(),
        appviewurl: appviewurl.clone(),
        trace: headers
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("N/A")
            .to_owned(),
        exp: now() + s.inner.token_validity.as_secs(),
        iss: "cs3org:wopiserver:fake".into(),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(s.inner.wopi_secret.as_bytes()),
    )
    .unwrap();
    super::hygiene::register_handed_out("WOPI access token", &token);
    super::hygiene::register("REVA token (TokenHeader)", reva_token);
    let id_storage = info.id.as_ref().map_or(storage, |i| i.storage_id.as_str());
    let inode = format!("{id_storage}!{}", URL_SAFE.encode(fileid));
    let wopisrc = utf8_percent_encode(
        &format!("{}/wopi/files/{inode}", s.inner.wopi_url),
        QUOTE_PLUS,
    )
    .to_string();
    let base = if vm == "VIEW_MODE_READ_WRITE" {
        &appurl
    } else {
        &appviewurl
    };
    let sep = if base.contains('?') { "&" } else { "?" };
    let mut answer = serde_json::json!({
        "app-url": format!("{base}{sep}WOPISrc={wopisrc}"),
        "form-parameters": { "access_token": token },
    });
    if vm != viewmode {
        answer["forced-viewmode-reason"] = reason.into();
    }
    axum::Json(answer).into_response()
}

async fn check_file_info(call: WopiCall) -> Response {
    let c = &call.claims;
    let token = token_of(&call.uri);
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let writable = matches!(
        c.viewmode.as_str(),
        "VIEW_MODE_READ_WRITE" | "VIEW_MODE_PREVIEW"
    );
    let rename = call.s.inner.enable_rename.load(Relaxed) && writable;
    axum::Json(serde_json::json!({
        "BaseFileName": basename(&c.filename),
        "OwnerId": "owner-of-the-home",
        "Size": call.info.size,
        "Version": call.version(),
        "UserCanWrite": writable,
        "ReadOnly": !writable,
        "UserId": c.wopiuser.split('!').nth(1).unwrap_or_default(),
        "UserFriendlyName": c.username,
        "SupportsLocks": writable,
        "SupportsGetLock": true,
        "SupportsUpdate": writable,
        "SupportsDeleteFile": writable,
        "SupportsRename": rename,
        "UserCanRename": rename,
        "UserCanNotWriteRelative": matches!(
            c.viewmode.as_str(),
            "VIEW_MODE_VIEW_ONLY" | "VIEW_MODE_EMBEDDED"
        ) || c.usertype != "regular",
        "SupportsExtendedLockLength": true,
        "SupportsUserInfo": true,
        "AccessTokenExpiry": c.exp * 1000,
        "ServerTime": now() * 1000,
        "SupportsCoauth": true,
        // Like the real one: its own token inside URLs (cs3-wopiserver.md §6.2).
        "HostEditUrl": format!("{}?WOPISrc=x&access_token={encoded}", c.appediturl),
        "DownloadUrl": format!("{}/wopi/iop/download?access_token={encoded}", call.s.inner.wopi_url),
    }))
    .into_response()
}

fn pattern_stream(len: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= len {
            return None;
        }
        let n = CHUNK.min(len - sent);
        let chunk: Vec<u8> = (sent..sent + n).map(|i| (i % 251) as u8).collect();
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), sent + n))
    });
    Body::from_stream(stream)
}

async fn get_file(call: WopiCall) -> Response {
    let content = match call.s.inner.tree.get_by(&call.key.0, &call.key.1) {
        // REVA refuses InitiateFileDownload without the permission.
        Some(e) if call.perms().initiate_file_download => e.content,
        _ => {
            return json_msg(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Failed to access file from storage",
            );
        }
    };
    let len = content.len();
    let body = match content {
        Content::Bytes(b) => Body::from(b),
        Content::Synthetic(n) => pattern_stream(n),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .header("X-WOPI-ItemVersion", call.version())
        .body(body)
        .unwrap()
}

fn conflict(current: &str, reason: &str) -> Response {
    Response::builder()
        .status(StatusCode::CONFLICT)
        .header("X-WOPI-Lock", current)
        .header("X-WOPI-LockFailureReason", reason)
        .body(Body::from(format!("{{\"message\": \"{reason}\"}}")))
        .unwrap()
}

fn ok_with_version(version: &str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("X-WOPI-ItemVersion", version)
        .body(Body::empty())
        .unwrap()
}

impl FakeWopiserver {
    /// The lock and the app holding it.
    fn current_lock(&self, key: &LockKey) -> Option<(String, String)> {
        let mut g = self.inner.locks.lock().unwrap();
        match g.get(key) {
            Some(l) if l.until > Instant::now() => Some((l.id.clone(), l.app.clone())),
            Some(_) => {
                g.remove(key);
                None
            }
            None => None,
        }
    }

    fn set_lock(&self, key: LockKey, id: Option<(String, String)>) {
        let mut g = self.inner.locks.lock().unwrap();
        match id {
            Some((id, app)) => {
                g.insert(
                    key,
                    Lock {
                        id,
                        app,
                        until: Instant::now() + Duration::from_secs(1800),
                    },
                );
            }
            None => {
                g.remove(&key);
            }
        }
    }

    /// Writes the LibreOffice lock file next to an ODF file; failures are only logged by the
    /// real server (a single-file share cannot hold it), so they are ignored here too.
    async fn write_libreoffice_lock(&self, c: &WopiClaims) {
        if !CODE_TYPES.contains(&extension(&c.filename).to_lowercase().as_str()) {
            return;
        }
        if let Ok(reva) = self.reva() {
            let _ = reva
                .touch_file(
                    &Secret::new(c.userid.as_str()),
                    by_path(&libreoffice_lock_name(&c.filename)),
                )
                .await;
        }
    }

    async fn remove_libreoffice_lock(&self, c: &WopiClaims) {
        if !CODE_TYPES.contains(&extension(&c.filename).to_lowercase().as_str()) {
            return;
        }
        if let Ok(reva) = self.reva() {
            let _ = reva
                .delete(
                    &Secret::new(c.userid.as_str()),
                    by_path(&libreoffice_lock_name(&c.filename)),
                )
                .await;
        }
    }
}

async fn file_op(call: WopiCall) -> Response {
    let Some(op) = call.header("x-wopi-override") else {
        return text(StatusCode::BAD_REQUEST, "Missing argument");
    };
    if op != "GET_LOCK" && !call.read_write() {
        return text(
            StatusCode::UNAUTHORIZED,
            "Attempting to perform a write operation using a read-only token",
        );
    }
    let s = &call.s;
    let key = call.key.clone();
    let version = call.version();
    let current = s.current_lock(&key).map(|(id, _)| id);
    let lock = call.header("x-wopi-lock").unwrap_or_default();
    let take = |lock: String| Some((lock, call.claims.appname.clone()));
    match op.as_str() {
        "GET_LOCK" => match current {
            Some(l) => Response::builder()
                .status(StatusCode::OK)
                .header("X-WOPI-Lock", l)
                .body(Body::empty())
                .unwrap(),
            // The wopiserver's deviation: 404 + empty header on an unlocked file.
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("X-WOPI-Lock", "")
                .body(Body::empty())
                .unwrap(),
        },
        "LOCK" | "REFRESH_LOCK" | "UNLOCK" if lock.is_empty() => {
            text(StatusCode::BAD_REQUEST, "Missing argument")
        }
        "LOCK" => match (call.header("x-wopi-oldlock"), current) {
            (None, None) => {
                s.write_libreoffice_lock(&call.claims).await;
                s.set_lock(key, take(lock));
                ok_with_version(&version)
            }
            (None, Some(cur)) if cur == lock => {
                s.set_lock(key, take(lock));
                ok_with_version(&version)
            }
            (Some(old), Some(cur)) if cur == old => {
                s.set_lock(key, take(lock));
                ok_with_version(&version)
            }
            (_, cur) => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        "REFRESH_LOCK" => match current {
            Some(cur) if cur == lock => {
                s.set_lock(key, take(lock));
                ok_with_version(&version)
            }
            cur => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        "UNLOCK" => match current {
            Some(cur) if cur == lock => {
                s.set_lock(key, None);
                s.remove_libreoffice_lock(&call.claims).await;
                ok_with_version(&version)
            }
            cur => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        // DeleteFile: refused while locked, else removed in REVA by path (REVA checks `delete`).
        "DELETE" => match current {
            Some(cur) => conflict(&cur, "Cannot delete a locked file"),
            None => {
                let deleted = match s.reva() {
                    Ok(reva) => {
                        reva.delete(
                            &Secret::new(call.claims.userid.as_str()),
                            by_path(&call.claims.filename),
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                match deleted {
                    Ok(()) => json_msg(StatusCode::OK, "OK"),
                    Err(RevaError::NotFound) => json_msg(StatusCode::NOT_FOUND, "File not found"),
                    Err(_) => json_msg(StatusCode::INTERNAL_SERVER_ERROR, IO_ERROR),
                }
            }
        },
        "RENAME_FILE" => rename_file(&call, current.as_deref()).await,
        // v11.5.0 refuses it to regular users (cs3-wopiserver.md §9.1): the gateway must
        // never forward it.
        "PUT_RELATIVE" => text(
            StatusCode::NOT_IMPLEMENTED,
            "Unauthorized to perform PutRelative",
        ),
        _ => text(
            StatusCode::NOT_IMPLEMENTED,
            "Not supported operation found in header",
        ),
    }
}

/// `renameFile` of v11.5.0 (`core/wopi.py`), its defects included: executed whatever
/// `enablerename` says, by path, and for a requested name containing a dot the conditional
/// expression binds the whole concatenation, so the target is empty.
async fn rename_file(call: &WopiCall, current: Option<&str>) -> Response {
    let Some(requested) = call.header("x-wopi-requestedname") else {
        return json_msg(StatusCode::BAD_REQUEST, "Missing argument");
    };
    let requested = crate::wopi::utf7::decode(&requested).unwrap_or(requested);
    let name = match requested.rfind('.') {
        Some(i) if i > 0 => requested[..i].to_owned(),
        _ => requested.clone(),
    };
    let lock = call.header("x-wopi-lock");
    if let Some(cur) = current
        && lock.as_deref() != Some(cur)
    {
        return conflict(cur, "Lock mismatch renaming file");
    }
    let c = &call.claims;
    let target = if requested.contains('.') {
        String::new()
    } else {
        format!(
            "{}/{requested}{}",
            dirname(&c.filename),
            extension(&c.filename)
        )
    };
    let token = Secret::new(c.userid.as_str());
    let moved = match call.s.reva() {
        Ok(reva) => {
            reva.r#move(&token, by_path(&c.filename), by_path(&target))
                .await
        }
        Err(e) => Err(e),
    };
    match moved {
        Ok(()) => {
            if CODE_TYPES.contains(&extension(&c.filename).to_lowercase().as_str())
                && let Ok(reva) = call.s.reva()
            {
                let _ = reva
                    .r#move(
                        &token,
                        by_path(&libreoffice_lock_name(&c.filename)),
                        by_path(&libreoffice_lock_name(&target)),
                    )
                    .await;
            }
            axum::Json(serde_json::json!({ "Name": name })).into_response()
        }
        Err(e) => {
            let (status, reason) = match e {
                RevaError::NotFound => (StatusCode::NOT_FOUND, "File not found".to_owned()),
                other => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Failed to rename: {other}"),
                ),
            };
            Response::builder()
                .status(status)
                .header("X-WOPI-InvalidFileNameError", reason)
                .body(Body::empty())
                .unwrap()
        }
    }
}

async fn put_file(call: WopiCall, body: Body) -> Response {
    if !call.read_write() {
        return text(
            StatusCode::UNAUTHORIZED,
            "Attempting to perform a write operation using a read-only token",
        );
    }
    let s = &call.s;
    let key = call.key.clone();
    let lock = call.header("x-wopi-lock").unwrap_or_default();
    let current = s.current_lock(&key).map(|(id, _)| id);
    match (&current, lock.is_empty()) {
        (Some(cur), false) if *cur == lock => {}
        (Some(cur), _) => return conflict(cur, "Lock mismatch"),
        (None, true) if call.info.size == 0 => {}
        (None, true) => return json_msg(StatusCode::CONFLICT, "File exists"),
        (None, false) => return conflict("", "File not locked"),
    }
    // REVA refuses InitiateFileUpload without the permission: an I/O error for the server.
    if !call.perms().initiate_file_upload {
        return json_msg(StatusCode::INTERNAL_SERVER_ERROR, IO_ERROR);
    }
    // Read the whole body before committing: a body that breaks off is never written.
    let mut data = Vec::new();
    let mut stream = body.into_data_stream();
    let mut complete = true;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => data.extend_from_slice(&b),
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    {
        let mut g = s.inner.requests.lock().unwrap();
        if let Some(r) = g.get_mut(call.index) {
            r.body_len = data.len() as u64;
            r.body_complete = complete;
        }
    }
    if !complete {
        return json_msg(StatusCode::INTERNAL_SERVER_ERROR, "Upload interrupted");
    }
    let mut version = 0;
    let stored = s.inner.tree.update(&key.0, &key.1, |e| {
        e.content = Content::Bytes(data);
        e.version += 1;
        version = e.version;
    });
    if !stored {
        return json_msg(StatusCode::INTERNAL_SERVER_ERROR, IO_ERROR);
    }
    ok_with_version(&format!("v{version}"))
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

    #[test]
    fn view_mode_downgrades() {
        let rw = "VIEW_MODE_READ_WRITE";
        assert_eq!(downgrade(rw, "/a.docx", 5, "MS", None).0, rw);
        let (vm, why) = downgrade(rw, "/a.doc", 5, "Microsoft Office Online", None);
        assert_eq!(vm, "VIEW_MODE_READ_ONLY");
        assert_eq!(why, "App does not support edit for this file type");
        assert_eq!(downgrade(rw, "/a.doc", 5, "Collabora Online", None).0, rw);
        let (vm, why) = downgrade(rw, "/a.odt", 5, "Collabora", Some("OnlyOffice"));
        assert_eq!(vm, "VIEW_MODE_READ_ONLY");
        assert!(why.contains("use app OnlyOffice"), "{why}");
        assert_eq!(
            downgrade(rw, "/a.odt", 5, "Collabora", Some("Collabora")).0,
            rw
        );
        assert_eq!(downgrade("VIEW_MODE_PREVIEW", "/a.odt", 0, "C", None).0, rw);
    }
}
