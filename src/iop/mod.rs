//! The wopiserver's IOP API for callers inside the trust boundary (cs3-wopiserver.md §14.3):
//! legacy bearers (the IOP secret, or the REVA JWT secret the old ocis-wopiserver sent) are
//! checked in constant time and never forwarded; legacy `GET /wopi/iop/open` is translated onto
//! `openinapp`; `/wopi/cbox/endpoints` is answered from the discovery cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::discovery::DiscoveryCache;
use crate::ids::endpoint_of;
use crate::open::extension_of;
use crate::pb::cs3::storage::provider::v1beta1::{Reference, ResourceId, ResourceType};
use crate::reva::{RevaClient, RevaError};
use crate::secret::Secret;
use crate::wopi::ViewMode;
use crate::wopiserver::{OpenInApp, WopiserverClient};

/// Bearer secrets a legacy caller may present.
pub struct LegacyCallers {
    secrets: Vec<Secret>,
}

impl LegacyCallers {
    pub fn new(iop: &Secret, reva: Option<&Secret>) -> Self {
        Self {
            secrets: std::iter::once(iop).chain(reva).cloned().collect(),
        }
    }

    /// `Authorization: Bearer <one of the secrets>`, compared in constant time.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        use crate::tokens::carriers::{BearerForm, bearer};
        let Some(token) = authorization.and_then(|v| bearer(v, BearerForm::Standard).ok()) else {
            return false;
        };
        let token = token.as_bytes();
        // Check every secret, so timing does not tell which one matched.
        self.secrets
            .iter()
            .fold(false, |ok, s| s.matches(token) | ok)
    }
}

/// A legacy answer: status and the wopiserver's literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyError {
    pub status: u16,
    pub text: &'static str,
}

const NOT_AUTHORIZED: LegacyError = LegacyError {
    status: 401,
    text: "Client not authorized",
};
const INVALID: LegacyError = LegacyError {
    status: 400,
    text: "Invalid argument",
};
const NOT_FOUND: LegacyError = LegacyError {
    status: 404,
    text: "Remote error, file or app not found or file is a directory",
};
const INTERNAL: LegacyError = LegacyError {
    status: 500,
    text: "Internal error, please contact support",
};

/// The legacy query, decoded.
#[derive(Debug)]
pub struct LegacyOpenParams {
    pub filename: String,
    pub viewmode: ViewMode,
    pub folderurl: Option<String>,
    pub endpoint: String,
    pub username: String,
    pub token: Secret,
}

/// Parses `filename`/`fileid`, `viewmode` (or `canedit`), `folderurl`, `endpoint`, `username`
/// and the `TokenHeader` value.
pub fn parse_params(
    query: &str,
    token_header: Option<&str>,
) -> Result<LegacyOpenParams, LegacyError> {
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let token = token_header
        .filter(|t| !t.is_empty())
        .ok_or(NOT_AUTHORIZED)?;
    // The legacy server unquoted `filename` once more after Flask's decoding.
    let filename = q
        .get("filename")
        .or_else(|| q.get("fileid"))
        .map(|f| percent_decode_str(f).decode_utf8_lossy().into_owned())
        .filter(|f| !f.is_empty())
        .ok_or(INVALID)?;
    let viewmode = match (q.get("viewmode"), q.get("canedit").map(String::as_str)) {
        (Some(m), _) => ViewMode::parse(m)
            .filter(|_| m.starts_with("VIEW_MODE_"))
            .ok_or(INVALID)?,
        // wopigate's choice; the legacy server's own mapping was not recorded.
        (None, Some("true")) => ViewMode::ReadWrite,
        (None, Some("false")) => ViewMode::ReadOnly,
        _ => return Err(INVALID),
    };
    Ok(LegacyOpenParams {
        filename,
        viewmode,
        folderurl: q.get("folderurl").cloned().filter(|f| !f.is_empty()),
        endpoint: q
            .get("endpoint")
            .cloned()
            .unwrap_or_else(|| "default".into()),
        username: q.get("username").cloned().unwrap_or_default(),
        token: Secret::new(token),
    })
}

/// The still-encoded `WOPISrc` value of an app URL.
pub fn wopisrc_of(app_url: &str) -> Option<&str> {
    let start = app_url.find("WOPISrc=")? + "WOPISrc=".len();
    let rest = &app_url[start..];
    Some(rest.split('&').next().unwrap_or(rest))
}

pub struct LegacyOpen {
    pub reva: RevaClient,
    pub discovery: Arc<DiscoveryCache>,
    pub wopiserver: Arc<WopiserverClient>,
}

fn reference_for(p: &LegacyOpenParams) -> Reference {
    if p.filename.starts_with('/') {
        return Reference {
            resource_id: None,
            path: p.filename.clone(),
        };
    }
    let (storage_id, space_id) = p.endpoint.split_once('$').unwrap_or((&p.endpoint, ""));
    Reference {
        resource_id: Some(ResourceId {
            storage_id: storage_id.to_owned(),
            opaque_id: p.filename.clone(),
            space_id: space_id.to_owned(),
        }),
        path: String::new(),
    }
}

impl LegacyOpen {
    /// Stat, pick the app from discovery, call `openinapp`, answer the legacy text:
    /// `<quoted WOPISrc>&access_token=<token>`.
    pub async fn open(&self, p: &LegacyOpenParams, trace_id: &str) -> Result<String, LegacyError> {
        let info = self
            .reva
            .stat_ref(&p.token, reference_for(p))
            .await
            .map_err(|e| match e {
                RevaError::Unauthenticated => NOT_AUTHORIZED,
                RevaError::NotFound | RevaError::PermissionDenied => NOT_FOUND,
                _ => INTERNAL,
            })?;
        if info.r#type() != ResourceType::File {
            return Err(NOT_FOUND);
        }
        let name = if info.name.is_empty() {
            &info.path
        } else {
            &info.name
        };
        let ext = extension_of(name).ok_or(NOT_FOUND)?;
        let choice = self
            .discovery
            .choose(&ext, None)
            .await
            .map_err(|_| NOT_FOUND)?;
        let urls = &choice.urls;
        let edit = if info.size == 0 {
            urls.editnew.as_ref().or(urls.edit.as_ref())
        } else {
            urls.edit.as_ref()
        };
        let appurl = edit.or(urls.view.as_ref()).ok_or(NOT_FOUND)?;
        let appviewurl = urls.view.as_ref().unwrap_or(appurl);
        let id = info.id.clone().ok_or(INTERNAL)?;
        let opened = self
            .wopiserver
            .open_in_app(
                &OpenInApp {
                    fileid: &id.opaque_id,
                    storage_id: &id.storage_id,
                    endpoint: &endpoint_of(&id),
                    viewmode: p.viewmode,
                    appname: &choice.app_name,
                    appurl,
                    appviewurl,
                    username: &p.username,
                    userid: "",
                    folderurl: p.folderurl.as_deref(),
                    usertype: "regular",
                },
                &p.token,
                trace_id,
            )
            .await
            .map_err(|e| match e {
                crate::wopiserver::WopiserverError::NotFound => NOT_FOUND,
                _ => INTERNAL,
            })?;
        let src = wopisrc_of(&opened.app_url).ok_or(INTERNAL)?;
        crate::metrics::metrics()
            .opens
            .with_label_values(&["iop_open", &choice.app_name, p.viewmode.as_str()])
            .inc();
        Ok(format!(
            "{src}&access_token={}",
            opened.access_token.expose()
        ))
    }
}

#[derive(Serialize)]
struct Endpoint<'a> {
    view: &'a str,
    edit: &'a str,
    new: &'a str,
}

/// `/wopi/cbox/endpoints` (cs3-wopiserver.md §4, §14.3) from the discovery cache: for each
/// dotted extension the first configured app's view, edit and new URLs.
pub async fn cbox_endpoints(discovery: &DiscoveryCache) -> Vec<u8> {
    let map = discovery.extension_map().await;
    let out: BTreeMap<&str, Endpoint<'_>> = map
        .iter()
        .filter_map(|(ext, (_, urls))| {
            let edit = urls.edit.as_deref().or(urls.view.as_deref())?;
            let view = urls.view.as_deref().unwrap_or(edit);
            let new = urls.editnew.as_deref().unwrap_or(edit);
            Some((ext.as_str(), Endpoint { view, edit, new }))
        })
        .collect();
    serde_json::to_vec(&out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearers_are_checked_exactly() {
        let c = LegacyCallers::new(&Secret::new("iop"), Some(&Secret::new("reva")));
        assert!(c.accepts(Some(b"Bearer iop")));
        assert!(c.accepts(Some(b"Bearer reva")));
        assert!(!c.accepts(Some(b"Bearer rev")));
        // The scheme is case-insensitive (RFC 7235 §2.1), as for every other bearer.
        assert!(c.accepts(Some(b"bearer iop")));
        assert!(!c.accepts(Some(b"Basic iop")));
        assert!(!c.accepts(Some(b"iop")));
        assert!(!c.accepts(None));
        let no_reva = LegacyCallers::new(&Secret::new("iop"), None);
        assert!(!no_reva.accepts(Some(b"Bearer reva")));
    }

    #[test]
    fn legacy_parameters() {
        let p = parse_params(
            "filename=%252Fhome%252Fa.docx&viewmode=VIEW_MODE_READ_ONLY&endpoint=st&username=Al",
            Some("tok"),
        )
        .unwrap();
        assert_eq!(p.filename, "/home/a.docx");
        assert_eq!(p.viewmode, ViewMode::ReadOnly);
        assert_eq!(p.endpoint, "st");
        let p = parse_params("fileid=abc&canedit=true", Some("tok")).unwrap();
        assert_eq!(
            (p.filename.as_str(), p.viewmode),
            ("abc", ViewMode::ReadWrite)
        );
        assert_eq!(
            parse_params("filename=a&viewmode=bogus", Some("t"))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_params("filename=a&viewmode=VIEW_MODE_READ_ONLY", None)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            parse_params("viewmode=VIEW_MODE_READ_ONLY", Some("t"))
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn wopisrc_is_taken_still_encoded() {
        let url = "http://c/cool.html?&WOPISrc=http%3A%2F%2Fgw%2Fwopi%2Ffiles%2Fs%21YQ%3D%3D&x=1";
        assert_eq!(
            wopisrc_of(url),
            Some("http%3A%2F%2Fgw%2Fwopi%2Ffiles%2Fs%21YQ%3D%3D")
        );
        assert_eq!(wopisrc_of("http://c/?a=b"), None);
    }
}
