//! The "open this file in an office app" flow shared by `GET /api/v0/wopi/open` and
//! `POST /app/open` (cs3-wopiserver.md §14.2): OIDC → REVA token → Stat → view mode →
//! discovery → `openinapp` → the answer in the caller's shape.

pub mod app_list;
pub mod request;
pub mod view_mode;

use std::sync::Arc;

use serde::Serialize;
use url::Url;

use crate::backends::Backends;
use crate::config::ClaimNames;
use crate::control::activity::Seen;
use crate::control::revocation::Presented;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::ExchangeError;
use crate::ids::{Resource, decode_file_id, endpoint_of};
use crate::pb::cs3::storage::provider::v1beta1::ResourceId;
use crate::pb::cs3::storage::provider::v1beta1::{ResourceInfo, ResourceType};
use crate::secret::Secret;
use crate::tokens::gateway::{Claims, FileGrant, Grant, Login};
use crate::tokens::remembered::TokenWrap;
use crate::tokens::reva::{RevaToken, unverified_exp};
use crate::wopi::ViewMode;
use crate::wopiserver::{OpenInApp, WopiserverError};

/// One open request, already taken apart by the HTTP layer.
#[derive(Debug)]
pub struct OpenRequest<'a> {
    pub bearer: &'a str,
    pub file_id: &'a str,
    pub app_name: Option<&'a str>,
    pub view_mode: Option<ViewMode>,
    pub trace_id: &'a str,
}

/// A successful open.
#[derive(Debug)]
pub struct OpenResult {
    pub app_url: String,
    pub access_token: Secret,
    /// Earlier of the WOPI and REVA token expiries, ms since the epoch.
    pub access_token_ttl_ms: u64,
    pub app_name: String,
    pub view_mode: ViewMode,
    pub forced_viewmode_reason: Option<String>,
    /// The file as REVA names it (from Stat).
    pub resource: ResourceId,
}

pub struct OpenService {
    pub backends: Arc<Backends>,
    pub claims: ClaimNames,
    pub folder_url_base: Option<Url>,
    /// Set when the open API hands out gateway tokens (`tokens.wrap`).
    pub wrap_open: Option<Arc<TokenWrap>>,
}

/// An open on behalf of a user whose REVA token is already known.
pub struct OpenAs<'a> {
    pub reva_token: &'a RevaToken,
    /// `username` for the wopiserver (the display name).
    pub username: &'a str,
    /// `userid` for the wopiserver: `<opaque id>@<idp>`.
    pub userid: &'a str,
    pub id: ResourceId,
    pub app_name: Option<&'a str>,
    pub view_mode: Option<ViewMode>,
    pub trace_id: &'a str,
    /// When no app opens the file's own type (a Save As to PDF): the app URLs of this
    /// extension instead (the source's), so the file can still be written through the
    /// wopiserver.
    pub fallback_ext: Option<&'a str>,
}

/// Lower-case dotted extension of a file name (`.docx`), if any.
pub fn extension_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    Some(format!(".{}", ext.to_ascii_lowercase()))
}

impl OpenService {
    pub async fn open(&self, req: &OpenRequest<'_>) -> Result<OpenResult, ApiError> {
        let principal = self.backends.validator.validate(req.bearer).await?;
        self.backends
            .rate_limits
            .user(
                crate::rate::Scope::Open,
                principal.claim_str("sub").unwrap_or_default(),
            )
            .map_err(ApiError::rate_limited)?;
        let id = decode_file_id(req.file_id)?;
        let login = Presented::oidc(&principal.claims, Some((&id.storage_id, &id.opaque_id)));
        if self.backends.control.revoked(&login, "open") {
            return Err(ApiError::revoked());
        }
        let reva_token = self
            .backends
            .exchanger
            .exchange(&principal, req.bearer)
            .await?;
        let username = principal
            .claim_str(&self.claims.display_name)
            .unwrap_or_default();
        // The wopiserver tells users apart (locks, `UserId`) by this: never a default.
        let required = |name: &str| {
            principal
                .claim_str(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ExchangeError::MissingClaim(name.to_owned()))
        };
        let userid = format!(
            "{}@{}",
            required(&self.claims.opaque_id)?,
            required(&self.claims.idp)?
        );
        let mut result = self
            .open_as(&OpenAs {
                reva_token: &reva_token,
                username,
                userid: &userid,
                id,
                app_name: req.app_name,
                view_mode: req.view_mode,
                trace_id: req.trace_id,
                fallback_ext: None,
            })
            .await?;
        // Wrapped: the office app gets a gateway token; the wopiserver's stays here.
        if let Some(wrap) = &self.wrap_open
            && let Some(user) = self.backends.exchanger.user_of(&principal)
        {
            let exp = crate::tokens::now() + wrap.ttl.as_secs();
            let claims = Claims {
                grant: Grant::File(FileGrant {
                    resource: Resource::from(&result.resource),
                    app: Some(result.app_name.clone()),
                    view_mode: result.view_mode,
                }),
                login: Login::of(&principal.claims, &user),
                user,
                mobile: false,
                exp,
            };
            let token = wrap
                .issue_remembering(&claims, &result.access_token, reva_token.expires_at)
                .await;
            result.access_token = Secret::new(token.to_string());
            result.access_token_ttl_ms = exp * 1000;
        }
        let file = crate::ids::file_id_text(&Resource::from(&result.resource));
        self.backends.control.activity.seen(&Seen {
            token: result.access_token.expose(),
            user: principal.claim_str("sub").unwrap_or_default(),
            file: &file,
            app: &result.app_name,
            view_mode: result.view_mode.as_str(),
            instance: "",
        });
        Ok(result)
    }

    pub async fn open_as(&self, req: &OpenAs<'_>) -> Result<OpenResult, ApiError> {
        let reva_token = req.reva_token;
        let info = self
            .backends
            .reva
            .stat(&reva_token.token, req.id.clone())
            .await?;
        if info.r#type() != ResourceType::File {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "the resource is not a file",
            ));
        }
        let view_mode = view_mode::resolve(info.permission_set.as_ref(), req.view_mode)
            .ok_or_else(ApiError::not_found)?;
        let (app_name, appurl, appviewurl) = self.app_urls(req, &info, view_mode).await?;
        let resource_id = info.id.clone().unwrap_or_else(|| req.id.clone());
        let endpoint = endpoint_of(&resource_id);
        let folderurl = self.folder_url(&info);
        let call = OpenInApp {
            fileid: &resource_id.opaque_id,
            storage_id: &resource_id.storage_id,
            endpoint: &endpoint,
            viewmode: view_mode,
            appname: &app_name,
            appurl: &appurl,
            appviewurl: &appviewurl,
            username: req.username,
            userid: req.userid,
            folderurl: folderurl.as_deref(),
            usertype: "regular",
        };
        let opened = match self
            .backends
            .wopiserver
            .open_in_app(&call, &reva_token.token, req.trace_id)
            .await
        {
            Err(WopiserverError::NotFound) => {
                return Err(self.missing_or_outage(reva_token, &resource_id).await);
            }
            other => other?,
        };
        let wopi_exp =
            unverified_exp(opened.access_token.expose()).unwrap_or(reva_token.expires_at);
        // The wopiserver may grant less than asked (`forced-viewmode-reason`: a legacy type, a
        // lock held by another app); its token, just received from it, says what it granted.
        let view_mode = crate::tokens::wopiserver::read(opened.access_token.expose())
            .and_then(|c| ViewMode::parse(&c.viewmode))
            .unwrap_or(view_mode);
        Ok(OpenResult {
            app_url: opened.app_url,
            access_token: opened.access_token,
            access_token_ttl_ms: wopi_exp.min(reva_token.expires_at) * 1000,
            app_name,
            view_mode,
            forced_viewmode_reason: opened.forced_viewmode_reason,
            resource: resource_id,
        })
    }

    /// The office app for the file's type, and its edit and view URLs for this view mode.
    async fn app_urls(
        &self,
        req: &OpenAs<'_>,
        info: &ResourceInfo,
        view_mode: ViewMode,
    ) -> Result<(String, String, String), ApiError> {
        let name = if info.name.is_empty() {
            &info.path
        } else {
            &info.name
        };
        let ext = extension_of(name).ok_or_else(|| {
            ApiError::new(ErrorCode::UnsupportedExtension, "the file has no extension")
        })?;
        let choice = match (
            self.backends.discovery.choose(&ext, req.app_name).await,
            req.fallback_ext,
        ) {
            (Ok(c), _) => c,
            (Err(crate::discovery::DiscoveryError::Unsupported(_)), Some(other)) => {
                self.backends.discovery.choose(other, req.app_name).await?
            }
            (Err(e), _) => return Err(e.into()),
        };
        let urls = &choice.urls;
        let view_url = match view_mode {
            ViewMode::Embedded => urls.embedview.as_ref().or(urls.view.as_ref()),
            _ => urls.view.as_ref(),
        };
        let edit_url = if info.size == 0 {
            urls.editnew.as_ref().or(urls.edit.as_ref())
        } else {
            urls.edit.as_ref()
        };
        // A type with only `view` (or only `edit`) uses that URL for both (wopi.md §9.3).
        let (appurl, appviewurl) = match (edit_url, view_url) {
            (Some(e), Some(v)) => (e, v),
            (Some(e), None) => (e, e),
            (None, Some(v)) => (v, v),
            (None, None) => {
                return Err(ApiError::new(ErrorCode::UnsupportedExtension, "no app URL"));
            }
        };
        Ok((choice.app_name.clone(), appurl.clone(), appviewurl.clone()))
    }

    /// `openinapp` answers 404 for any storage error, REVA being down included
    /// (cs3-wopiserver.md §5). The file the gateway has just found is Stat-ed again: gone now,
    /// it is a 404; REVA down is said as an outage (503: try again); still there, the
    /// wopiserver failed to reach it (502), never "not found".
    async fn missing_or_outage(&self, reva_token: &RevaToken, id: &ResourceId) -> ApiError {
        match self.backends.reva.stat(&reva_token.token, id.clone()).await {
            Ok(_) => ApiError::new(
                ErrorCode::UpstreamError,
                "the wopiserver could not reach the file",
            ),
            Err(e) => e.into(),
        }
    }

    fn folder_url(&self, info: &ResourceInfo) -> Option<String> {
        let base = self.folder_url_base.as_ref()?;
        let dir = info
            .path
            .rsplit_once('/')
            .map(|(d, _)| d)
            .filter(|d| info.path.starts_with('/') && !d.is_empty());
        Some(match dir {
            Some(d) => format!("{}{}", base.as_str().trim_end_matches('/'), d),
            None => base.to_string(),
        })
    }
}

/// `GET /api/v0/wopi/open` answer (cs3-wopiserver.md §12.5).
#[derive(Serialize)]
pub struct LegacyOpenResponse<'a> {
    pub wopiclienturl: &'a str,
    pub accesstoken: &'a str,
    pub accesstokenttl: u64,
}

/// `POST /app/open` answer (cs3-wopiserver.md §13).
#[derive(Serialize)]
pub struct AppOpenResponse<'a> {
    pub app_url: &'a str,
    pub method: &'static str,
    pub form_parameters: FormParameters<'a>,
    pub target: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_viewmode_reason: Option<&'a str>,
}

#[derive(Serialize)]
pub struct FormParameters<'a> {
    pub access_token: &'a str,
    /// A string: clients post it back as a form field, as REVA's form parameters are strings.
    pub access_token_ttl: String,
}

impl OpenResult {
    pub fn legacy_json(&self) -> Vec<u8> {
        serde_json::to_vec(&LegacyOpenResponse {
            wopiclienturl: &self.app_url,
            accesstoken: self.access_token.expose(),
            accesstokenttl: self.access_token_ttl_ms,
        })
        .unwrap_or_default()
    }

    pub fn app_open_json(&self) -> Vec<u8> {
        serde_json::to_vec(&AppOpenResponse {
            app_url: &self.app_url,
            method: "POST",
            form_parameters: FormParameters {
                access_token: self.access_token.expose(),
                access_token_ttl: self.access_token_ttl_ms.to_string(),
            },
            target: "iframe",
            forced_viewmode_reason: self.forced_viewmode_reason.as_deref(),
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension_of("Report.DOCX").as_deref(), Some(".docx"));
        assert_eq!(extension_of("/a.b/c.odt").as_deref(), Some(".odt"));
        assert_eq!(extension_of("noext"), None);
        assert_eq!(extension_of(".bashrc"), None);
        assert_eq!(extension_of("trailing."), None);
    }
}
