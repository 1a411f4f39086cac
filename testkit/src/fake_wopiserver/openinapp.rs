//! `GET /wopi/iop/openinapp` as v11.5.0 answers it: the IOP bearer and `TokenHeader` checked,
//! the file Stat-ed in REVA with that token, `generateAccessToken`'s view-mode downgrades, and
//! a token naming the file by its path.

use super::*;

/// `generateAccessToken`'s downgrades: legacy types outside Collabora, and a lock held by
/// another app. The mode that stays and why it changed.
pub(super) fn downgrade(
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

pub(super) async fn openinapp(
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
    crate::hygiene::register_handed_out("WOPI access token", &token);
    crate::hygiene::register("REVA token (TokenHeader)", reva_token);
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

#[cfg(test)]
mod tests {
    use super::*;

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
