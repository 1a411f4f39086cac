//! Fake CS3 WOPI server (cs3-wopiserver.md §5–§7): `openinapp` checks the IOP bearer and
//! `TokenHeader` and answers the real JSON with an HS256 WOPI token carrying the REVA token in
//! `userid`; `/wopi/files/*` serves CheckFileInfo, GetFile (streamed), PutFile and the lock
//! operations with the wopiserver's status codes. Every request is recorded.

use std::collections::HashMap;
use std::net::SocketAddr;
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
use super::tree::{Content, Entry, Tree};

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
    until: Instant,
}

struct Inner {
    iop_secret: String,
    wopi_secret: String,
    wopi_url: String,
    token_validity: Duration,
    tree: Tree,
    requests: Mutex<Vec<Recorded>>,
    /// Shared by sibling instances: the real wopiserver keeps locks in the storage.
    locks: Arc<Mutex<HashMap<(String, String), Lock>>>,
    /// What `GET /wopi` reports; probes are counted, not recorded with the WOPI traffic.
    health_fail: std::sync::atomic::AtomicBool,
    health_probes: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
pub struct FakeWopiserver {
    inner: Arc<Inner>,
}

/// Python's `quote_plus` plus `-` (encoded since wopiserver v8.2).
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'~');

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

impl FakeWopiserver {
    /// `wopi_url` is the public origin office apps use (the gateway's), as `[general] wopiurl`.
    pub fn new(iop_secret: &str, wopi_secret: &str, wopi_url: &str, tree: Tree) -> Self {
        Self {
            inner: Arc::new(Inner {
                iop_secret: iop_secret.into(),
                wopi_secret: wopi_secret.into(),
                wopi_url: wopi_url.trim_end_matches('/').into(),
                token_validity: Duration::from_secs(86400),
                tree,
                requests: Mutex::new(Vec::new()),
                locks: Arc::new(Mutex::new(HashMap::new())),
                health_fail: Default::default(),
                health_probes: Default::default(),
            }),
        }
    }

    /// Another instance of the same deployment: same secrets, storage and locks, its own
    /// request log and health.
    pub fn sibling(&self) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                iop_secret: i.iop_secret.clone(),
                wopi_secret: i.wopi_secret.clone(),
                wopi_url: i.wopi_url.clone(),
                token_validity: i.token_validity,
                tree: i.tree.clone(),
                requests: Mutex::new(Vec::new()),
                locks: i.locks.clone(),
                health_fail: Default::default(),
                health_probes: Default::default(),
            }),
        }
    }

    /// Makes `GET /wopi` report `Health status: FAIL` (its storage probe failing) or OK.
    pub fn set_health_fail(&self, fail: bool) {
        self.inner
            .health_fail
            .store(fail, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times `GET /wopi` was asked.
    pub fn health_probes(&self) -> usize {
        self.inner
            .health_probes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.inner.requests.lock().unwrap().clear();
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
        let token = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
        let claims = token
            .as_deref()
            .and_then(|t| self.verify(t))
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
}

impl FakeWopiserver {
    /// The token's claims, the file key and the file, or the wopiserver's error answer. The file
    /// comes from the token; the path id is ignored, as the real server does.
    #[allow(clippy::result_large_err)]
    fn resolve(&self, uri: &Uri) -> Result<(WopiClaims, (String, String), Entry), Response> {
        let c = self.claims_from(uri)?;
        let key = file_key(&c);
        match self.inner.tree.get_by(&key.0, &key.1) {
            Some(e) => Ok((c, key, e)),
            None => Err(json_msg(StatusCode::NOT_FOUND, "File not found")),
        }
    }
}

/// The raw `access_token` value of a request.
/// One WOPI request to the double, as the wopiserver takes it: recorded first, then its token
/// verified and its file looked up; what fails is answered as the wopiserver answers it.
struct WopiCall {
    s: FakeWopiserver,
    /// Its place among the recorded requests.
    index: usize,
    claims: WopiClaims,
    key: (String, String),
    entry: Entry,
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
        let (claims, key, entry) = s.resolve(&parts.uri)?;
        Ok(Self {
            s: s.clone(),
            index,
            claims,
            key,
            entry,
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

fn token_of(uri: &Uri) -> String {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn file_key(c: &WopiClaims) -> (String, String) {
    let storage = c.endpoint.split('$').next().unwrap_or_default().to_owned();
    (storage, c.fileid.clone())
}

async fn health(State(s): State<FakeWopiserver>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    s.inner.health_probes.fetch_add(1, Relaxed);
    // Always 200, like the real one: the text carries the verdict.
    text(
        StatusCode::OK,
        if s.inner.health_fail.load(Relaxed) {
            "<html><body>WOPI server fake<br>Storage type: cs3<br>Health status: FAIL</body></html>"
        } else {
            "<html><body>WOPI server fake<br>Storage type: cs3<br>Health status: OK</body></html>"
        },
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
    let storage = endpoint.split('$').next().unwrap_or_default();
    let entry = s
        .inner
        .tree
        .get_by(storage, fileid)
        .filter(|e| !e.container);
    let Some(entry) = entry else {
        return text(
            StatusCode::NOT_FOUND,
            "Remote error, file not found or file is a directory",
        );
    };
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
        filename: entry.path.clone(),
        fileid: fileid.clone(),
        username: twice("username"),
        viewmode: viewmode.clone(),
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
    let inode = format!("{storage}!{}", URL_SAFE.encode(fileid));
    let wopisrc = utf8_percent_encode(
        &format!("{}/wopi/files/{inode}", s.inner.wopi_url),
        QUOTE_PLUS,
    )
    .to_string();
    let base = if viewmode == "VIEW_MODE_READ_WRITE" {
        &appurl
    } else {
        &appviewurl
    };
    let sep = if base.contains('?') { "&" } else { "?" };
    axum::Json(serde_json::json!({
        "app-url": format!("{base}{sep}WOPISrc={wopisrc}"),
        "form-parameters": { "access_token": token },
    }))
    .into_response()
}

async fn check_file_info(call: WopiCall) -> Response {
    let WopiCall {
        s,
        claims: c,
        entry: e,
        uri,
        ..
    } = call;
    let token = token_of(&uri);
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    axum::Json(serde_json::json!({
        "BaseFileName": e.name,
        "OwnerId": "owner-of-the-home",
        "Size": e.content.len(),
        "Version": format!("v{}", e.version),
        "UserCanWrite": c.viewmode == "VIEW_MODE_READ_WRITE",
        "UserId": c.wopiuser.split('!').nth(1).unwrap_or_default(),
        "UserFriendlyName": c.username,
        "SupportsLocks": true,
        "SupportsGetLock": true,
        "SupportsUpdate": true,
        // What v11.5.0 says while it refuses PutRelativeFile.
        "UserCanNotWriteRelative": false,
        "SupportsExtendedLockLength": true,
        "AccessTokenExpiry": c.exp * 1000,
        "ServerTime": 0,
        "SupportsCoauth": false,
        // Like the real one: its own token inside URLs (cs3-wopiserver.md §6.2).
        "HostEditUrl": format!("{}?WOPISrc=x&access_token={encoded}", c.appediturl),
        "DownloadUrl": format!("{}/wopi/iop/download?access_token={encoded}", s.inner.wopi_url),
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
    let WopiCall { entry: e, .. } = call;
    let len = e.content.len();
    let body = match e.content {
        Content::Bytes(b) => Body::from(b),
        Content::Synthetic(n) => pattern_stream(n),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .header("X-WOPI-ItemVersion", format!("v{}", e.version))
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

fn ok_with_version(version: u64) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("X-WOPI-ItemVersion", format!("v{version}"))
        .body(Body::empty())
        .unwrap()
}

impl FakeWopiserver {
    fn current_lock(&self, key: &(String, String)) -> Option<String> {
        let mut g = self.inner.locks.lock().unwrap();
        match g.get(key) {
            Some(l) if l.until > Instant::now() => Some(l.id.clone()),
            Some(_) => {
                g.remove(key);
                None
            }
            None => None,
        }
    }

    fn set_lock(&self, key: (String, String), id: Option<String>) {
        let mut g = self.inner.locks.lock().unwrap();
        match id {
            Some(id) => {
                g.insert(
                    key,
                    Lock {
                        id,
                        until: Instant::now() + Duration::from_secs(1800),
                    },
                );
            }
            None => {
                g.remove(&key);
            }
        }
    }
}

async fn file_op(call: WopiCall) -> Response {
    let WopiCall {
        s,
        claims: c,
        key,
        entry,
        headers,
        ..
    } = call;
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(op) = h("x-wopi-override") else {
        return text(StatusCode::BAD_REQUEST, "Missing argument");
    };
    if op != "GET_LOCK" && c.viewmode != "VIEW_MODE_READ_WRITE" {
        return text(
            StatusCode::UNAUTHORIZED,
            "Attempting to perform a write operation using a read-only token",
        );
    }
    let current = s.current_lock(&key);
    let lock = h("x-wopi-lock").unwrap_or_default();
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
        "LOCK" => match (h("x-wopi-oldlock"), current) {
            (None, None) => {
                s.set_lock(key, Some(lock));
                ok_with_version(entry.version)
            }
            (None, Some(cur)) if cur == lock => {
                s.set_lock(key, Some(lock));
                ok_with_version(entry.version)
            }
            (Some(old), Some(cur)) if cur == old => {
                s.set_lock(key, Some(lock));
                ok_with_version(entry.version)
            }
            (_, cur) => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        "REFRESH_LOCK" => match current {
            Some(cur) if cur == lock => {
                s.set_lock(key, Some(lock));
                ok_with_version(entry.version)
            }
            cur => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        "UNLOCK" => match current {
            Some(cur) if cur == lock => {
                s.set_lock(key, None);
                ok_with_version(entry.version)
            }
            cur => conflict(cur.as_deref().unwrap_or(""), "Lock mismatch"),
        },
        // DeleteFile (cs3-wopiserver.md §6): refused while locked, else gone from storage.
        "DELETE" => match current {
            Some(cur) => conflict(&cur, "File is locked"),
            None => {
                s.inner.tree.remove(&entry.id);
                json_msg(StatusCode::OK, "OK")
            }
        },
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

async fn put_file(call: WopiCall, body: Body) -> Response {
    let WopiCall {
        s,
        index: idx,
        claims: c,
        key,
        entry,
        headers,
        ..
    } = call;
    if c.viewmode != "VIEW_MODE_READ_WRITE" {
        return text(
            StatusCode::UNAUTHORIZED,
            "Attempting to perform a write operation using a read-only token",
        );
    }
    let lock = headers
        .get("x-wopi-lock")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let current = s.current_lock(&key);
    match (&current, lock.is_empty()) {
        (Some(cur), false) if *cur == lock => {}
        (Some(cur), _) => return conflict(cur, "Lock mismatch"),
        (None, true) if entry.content.is_empty() => {}
        (None, true) => return json_msg(StatusCode::CONFLICT, "File exists"),
        (None, false) => return conflict("", "File not locked"),
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
        if let Some(r) = g.get_mut(idx) {
            r.body_len = data.len() as u64;
            r.body_complete = complete;
        }
    }
    if !complete {
        return json_msg(StatusCode::INTERNAL_SERVER_ERROR, "Upload interrupted");
    }
    let mut version = 0;
    s.inner.tree.update(&key.0, &key.1, |e| {
        e.content = Content::Bytes(data);
        e.version += 1;
        version = e.version;
    });
    ok_with_version(version)
}
