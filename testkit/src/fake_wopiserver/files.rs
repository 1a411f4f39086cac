//! `/wopi/files/*` as v11.5.0 serves it: every call Stat-s the token's path in REVA first;
//! CheckFileInfo, GetFile, PutFile, the lock operations (with LibreOffice lock files), DeleteFile
//! and RenameFile with the real server's status codes and defects.

use super::*;

/// One WOPI request to the double, as the wopiserver takes it: recorded first, then its token
/// verified and its file Stat-ed in REVA **by the token's path** (the path id is ignored, as the
/// real server does); what fails is answered as the wopiserver answers it.
pub(super) struct WopiCall {
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

    fn perms(&self) -> wopigate::pb::cs3::storage::provider::v1beta1::ResourcePermissions {
        self.info.permission_set.unwrap_or_default()
    }
}

pub(super) async fn check_file_info(call: WopiCall) -> Response {
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

pub(super) async fn get_file(call: WopiCall) -> Response {
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
    pub(super) fn current_lock(&self, key: &LockKey) -> Option<(String, String)> {
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

    /// Writes (at Lock) or removes (at Unlock) the LibreOffice lock file next to an ODF file;
    /// failures are only logged by the real server (a single-file share cannot hold it), so
    /// they are ignored here too.
    async fn libreoffice_lock(&self, c: &WopiClaims, present: bool) {
        if !CODE_TYPES.contains(&extension(&c.filename).to_lowercase().as_str()) {
            return;
        }
        let Ok(reva) = self.reva() else {
            return;
        };
        let token = Secret::new(c.userid.as_str());
        let at = by_path(&libreoffice_lock_name(&c.filename));
        let _ = if present {
            reva.touch_file(&token, at).await
        } else {
            reva.delete(&token, at).await
        };
    }
}

pub(super) async fn file_op(call: WopiCall) -> Response {
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
                s.libreoffice_lock(&call.claims, true).await;
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
                s.libreoffice_lock(&call.claims, false).await;
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
    let requested = wopigate::wopi::utf7::decode(&requested).unwrap_or(requested);
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

pub(super) async fn put_file(call: WopiCall, body: Body) -> Response {
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
    let mut tally = BodyTally {
        s: s.clone(),
        index: call.index,
        len: 0,
        complete: false,
    };
    let mut complete = true;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => {
                data.extend_from_slice(&b);
                tally.len = data.len() as u64;
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    tally.complete = complete;
    drop(tally);
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

/// What a PutFile received, written to its recorded request when the reading ends, however
/// it ends: hyper drops a handler whose connection broke off before it sees the body's error,
/// and that is a broken upload too.
struct BodyTally {
    s: FakeWopiserver,
    index: usize,
    len: u64,
    complete: bool,
}

impl Drop for BodyTally {
    fn drop(&mut self) {
        let mut g = self
            .s
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = g.get_mut(self.index) {
            r.body_len = self.len;
            r.body_complete = self.complete;
        }
    }
}
