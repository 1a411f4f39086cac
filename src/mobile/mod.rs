//! Office for iOS/Android on top of REVA (wopi.md §5–§8): the bootstrapper (OAuth2-authenticated
//! entry: Bootstrap, GetRootContainer, GetNewAccessToken), the ecosystem and container endpoints
//! (authorised by gateway tokens) — everything the CS3 WOPI server does not have. Files
//! themselves go through the normal `/wopi/files/*` proxy with gateway tokens.

mod bootstrapper;
mod containers;
mod time;
mod writes;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::JwksSource;
use crate::config::Mobile;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::ids::{Resource, path_id_of};
use crate::open::view_mode;
use crate::pb::cs3::storage::provider::v1beta1::{ResourceId, ResourceInfo};
use crate::secret::Secret;
use crate::tokens::gateway::{Claims, FileGrant, Grant};
use crate::tokens::reva::UserClaim;
use crate::tokens::swap::sanitise;
use crate::wopi::ViewMode;
use crate::wopi::route::Route;

pub struct MobileService {
    pub backends: Arc<crate::backends::Backends>,
    /// Gateway tokens: the mobile service exists only when they are on.
    pub wrap: Arc<crate::tokens::remembered::TokenWrap>,
    pub jwks: Arc<JwksSource>,
    /// External origin, no trailing slash.
    pub public_url: String,
    pub settings: Mobile,
}

/// A request to the mobile endpoints: its head and its (decoded) `access_token` parameter.
pub struct MobileRequest<'a> {
    pub head: &'a http::request::Parts,
    pub access_token: Option<String>,
}

impl MobileRequest<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn authorization(&self) -> Option<&[u8]> {
        self.head
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
    }
}

fn not_implemented() -> ApiError {
    ApiError::new(ErrorCode::NotImplemented, "operation not supported")
}

fn quoted(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", value.replace(['"', '\\'], ""))
}

/// `Version` as CheckFileInfo reports it (`v<etag>`).
fn version_of(info: &ResourceInfo) -> String {
    format!("v{}", info.etag.trim_matches('"'))
}

/// The resource REVA described; an answer without an id names nothing the caller may have.
fn resource_of(info: &ResourceInfo) -> Result<Resource, ApiError> {
    info.id
        .as_ref()
        .map(Resource::from)
        .ok_or_else(ApiError::not_found)
}

fn display_name(info: &ResourceInfo) -> String {
    let name = crate::wopi::names::of(info);
    sanitise(if name.is_empty() { "Home" } else { name })
}

impl MobileService {
    /// Answers a bootstrapper or mobile WOPI request, by the route it was classified as.
    pub async fn serve(&self, route: Route, req: &MobileRequest<'_>) -> Result<Reply, ApiError> {
        match route {
            Route::Bootstrapper(op) => Ok(self.bootstrapper(op, req).await),
            Route::MobileWopi(endpoint) => self.wopi(endpoint, req).await,
            _ => Err(ApiError::no_such_endpoint()),
        }
    }

    async fn reva_token(&self, user: &UserClaim) -> Result<Secret, ApiError> {
        Ok(self.backends.exchanger.for_user(user).await?.token.clone())
    }

    /// A mobile token for `grant`, of the same user, login and lifetime as `from`.
    fn token(&self, grant: Grant, from: &Claims) -> String {
        self.wrap.keys.issue(&Claims {
            grant,
            mobile: true,
            ..from.clone()
        })
    }

    fn ecosystem_url(&self, from: &Claims) -> Result<String, ApiError> {
        Ok(format!(
            "{}/wopi/ecosystem?access_token={}",
            self.public_url,
            self.token(Grant::Ecosystem, from)
        ))
    }

    fn container_url(&self, from: &Claims, r: &Resource) -> Result<String, ApiError> {
        Ok(format!(
            "{}/wopi/containers/{}?access_token={}",
            self.public_url,
            path_id_of(r),
            self.token(Grant::Container(r.clone()), from)
        ))
    }

    /// A file token carries the app and view mode its wopiserver token will be opened with.
    async fn file_token(&self, from: &Claims, info: &ResourceInfo) -> Result<String, ApiError> {
        let ext = crate::open::extension_of(&display_name(info)).unwrap_or_default();
        // The configured mobile app when it opens this type, else the first that does.
        let preferred = match &self.settings.app {
            Some(a) => self.backends.discovery.choose(&ext, Some(a)).await.ok(),
            None => None,
        };
        let app = match preferred {
            Some(c) => Some(c.app_name),
            None => self
                .backends
                .discovery
                .choose(&ext, None)
                .await
                .ok()
                .map(|c| c.app_name),
        };
        // What the permissions allow; nothing at all is the narrowest mode, refused at open.
        let view_mode =
            view_mode::resolve(info.permission_set.as_ref(), None).unwrap_or(ViewMode::ViewOnly);
        let grant = Grant::File(FileGrant {
            resource: resource_of(info)?,
            app,
            view_mode,
        });
        Ok(self.token(grant, from))
    }

    async fn file_url(&self, from: &Claims, info: &ResourceInfo) -> Result<String, ApiError> {
        let r = resource_of(info)?;
        Ok(format!(
            "{}/wopi/files/{}?access_token={}",
            self.public_url,
            path_id_of(&r),
            self.file_token(from, info).await?
        ))
    }

    fn bootstrap(&self, from: &Claims) -> Result<Value, ApiError> {
        let user = &from.user;
        let sign_in = if user.mail.is_empty() {
            &user.username
        } else {
            &user.mail
        };
        let mut b = json!({
            "EcosystemUrl": self.ecosystem_url(from)?,
            "UserId": sanitise(&user.id.opaque_id),
            "SignInName": sign_in,
        });
        if !user.display_name.is_empty() {
            b["UserFriendlyName"] = json!(user.display_name);
        }
        Ok(b)
    }

    /// The user's home as a REVA resource.
    async fn home(&self, reva: &Secret) -> Result<ResourceInfo, ApiError> {
        let path = self.backends.reva.get_home(reva).await?;
        let info = self
            .backends
            .reva
            .stat_ref(
                reva,
                crate::pb::cs3::storage::provider::v1beta1::Reference {
                    resource_id: None,
                    path,
                },
            )
            .await?;
        Ok(info)
    }

    async fn stat(&self, reva: &Secret, r: &Resource) -> Result<ResourceInfo, ApiError> {
        let info = self.backends.reva.stat(reva, ResourceId::from(r)).await?;
        // Visible only with the stat permission (a file of another user is "not found").
        if !info.permission_set.as_ref().is_some_and(|p| p.stat) {
            return Err(ApiError::not_found());
        }
        Ok(info)
    }
}
