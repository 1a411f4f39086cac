//! Office for iOS/Android on top of REVA (wopi.md §5–§8): the bootstrapper (OAuth2-authenticated
//! entry: Bootstrap, GetRootContainer, GetNewAccessToken), the ecosystem and container endpoints
//! (authorised by gateway tokens) — everything the CS3 WOPI server does not have. Files
//! themselves go through the normal `/wopi/files/*` proxy with gateway tokens.

mod time;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::{JwksSource, bearer_token};
use crate::config::Mobile;
use crate::error::{ApiError, ErrorCode};
use crate::exchange::UserClaim;
use crate::gwtoken::{Claims, Kind, Resource};
use crate::open::OpenService;
use crate::open::view_mode;
use crate::open::wrap::now;
use crate::pb::cs3::storage::provider::v1beta1::{ResourceId, ResourceInfo, ResourceType};
use crate::proxy::wopi_files::{path_id_of, path_matches, resource_of_path_id};
use crate::reva::RevaError;
use crate::secret::Secret;
use crate::wopi::rewrite::sanitise;

/// One answer of the mobile endpoints.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `WWW-Authenticate` on a bootstrapper 401.
    pub challenge: Option<String>,
}

impl Answer {
    fn ok(v: Value) -> Self {
        Self {
            status: 200,
            body: serde_json::to_vec(&v).unwrap_or_default(),
            challenge: None,
        }
    }
}

pub struct MobileService {
    pub open: Arc<OpenService>,
    pub jwks: Arc<JwksSource>,
    /// External origin, no trailing slash.
    pub public_url: String,
    pub settings: Mobile,
}

/// A request to the mobile endpoints: its head and its (decoded) `access_token` parameter.
pub struct MobileRequest<'a> {
    pub head: &'a pingora::http::RequestHeader,
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

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "not found")
}

fn not_implemented() -> ApiError {
    ApiError::new(ErrorCode::NotImplemented, "operation not supported")
}

fn from_reva(e: RevaError) -> ApiError {
    match e {
        RevaError::NotFound | RevaError::PermissionDenied => not_found(),
        other => ApiError::from(other),
    }
}

/// `Bearer <t>` or the documented `Bearer: <t>` (wopi.md §7.2), scheme case-insensitive.
fn oauth_bearer(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = text.split_at(text.find([' ', ':'])?);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(':').trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn quoted(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", value.replace(['"', '\\'], ""))
}

/// `Version` as CheckFileInfo reports it (`v<etag>`).
fn version_of(info: &ResourceInfo) -> String {
    format!("v{}", info.etag.trim_matches('"'))
}

fn display_name(info: &ResourceInfo) -> String {
    let name = if info.name.is_empty() {
        info.path.rsplit('/').next().unwrap_or_default()
    } else {
        &info.name
    };
    sanitise(if name.is_empty() { "Home" } else { name })
}

impl MobileService {
    /// The bootstrapper's challenge (wopi.md §7.2): exactly one `Bearer` scheme, no spaces
    /// between parameters.
    fn challenge(&self) -> String {
        let endpoints = self
            .jwks
            .current()
            .map(|k| k.endpoints.clone())
            .unwrap_or_default();
        let auth = self
            .settings
            .authorization_uri
            .as_ref()
            .map(|u| u.to_string())
            .or(endpoints.authorization)
            .unwrap_or_default();
        let token = self
            .settings
            .token_uri
            .as_ref()
            .map(|u| u.to_string())
            .or(endpoints.token)
            .unwrap_or_default();
        let mut params = vec![
            quoted("authorization_uri", &auth),
            quoted("tokenIssuance_uri", &token),
        ];
        if let Some(p) = &self.settings.provider_id {
            params.push(quoted("providerId", p));
        }
        if let Some(s) = &self.settings.url_schemes {
            let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
            params.push(quoted("UrlSchemes", &enc.replace('+', "%20")));
        }
        format!("Bearer {}", params.join(","))
    }

    fn unauthorized(&self, message: &str) -> Answer {
        Answer {
            status: 401,
            body: ApiError::new(ErrorCode::InvalidToken, message).body(),
            challenge: Some(self.challenge()),
        }
    }

    fn wrap(&self) -> Result<&crate::open::wrap::TokenWrap, ApiError> {
        self.open
            .wrap
            .as_deref()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "gateway tokens are off"))
    }

    async fn reva_token(&self, user: &UserClaim) -> Result<Secret, ApiError> {
        Ok(self.open.exchanger.for_user(user).await?.token.clone())
    }

    fn token(
        &self,
        kind: Kind,
        user: &UserClaim,
        resource: Option<Resource>,
        exp: u64,
    ) -> Result<String, ApiError> {
        Ok(self.wrap()?.keys.issue(&Claims {
            kind,
            user: user.clone(),
            resource,
            app: None,
            view_mode: None,
            mobile: true,
            exp,
        }))
    }

    fn ecosystem_url(&self, user: &UserClaim, exp: u64) -> Result<String, ApiError> {
        Ok(format!(
            "{}/wopi/ecosystem?access_token={}",
            self.public_url,
            self.token(Kind::Ecosystem, user, None, exp)?
        ))
    }

    fn container_url(&self, user: &UserClaim, r: &Resource, exp: u64) -> Result<String, ApiError> {
        Ok(format!(
            "{}/wopi/containers/{}?access_token={}",
            self.public_url,
            path_id_of(r),
            self.token(Kind::Container, user, Some(r.clone()), exp)?
        ))
    }

    /// A file token carries the app and view mode its wopiserver token will be opened with.
    async fn file_token(
        &self,
        user: &UserClaim,
        info: &ResourceInfo,
        exp: u64,
    ) -> Result<String, ApiError> {
        let ext = crate::open::extension_of(&display_name(info)).unwrap_or_default();
        // The configured mobile app when it opens this type, else the first that does.
        let preferred = match &self.settings.app {
            Some(a) => self.open.discovery.choose(&ext, Some(a)).await.ok(),
            None => None,
        };
        let app = match preferred {
            Some(c) => Some(c.app_name),
            None => self
                .open
                .discovery
                .choose(&ext, None)
                .await
                .ok()
                .map(|c| c.app_name),
        };
        let mode = view_mode::resolve(info.permission_set.as_ref(), None);
        let r = Resource::from(&info.id.clone().unwrap_or_default());
        Ok(self.wrap()?.keys.issue(&Claims {
            kind: Kind::File,
            user: user.clone(),
            resource: Some(r),
            app,
            view_mode: mode.map(|m| m.as_str().to_owned()),
            mobile: true,
            exp,
        }))
    }

    async fn file_url(
        &self,
        user: &UserClaim,
        info: &ResourceInfo,
        exp: u64,
    ) -> Result<String, ApiError> {
        let r = Resource::from(&info.id.clone().unwrap_or_default());
        Ok(format!(
            "{}/wopi/files/{}?access_token={}",
            self.public_url,
            path_id_of(&r),
            self.file_token(user, info, exp).await?
        ))
    }

    fn bootstrap(&self, user: &UserClaim, exp: u64) -> Result<Value, ApiError> {
        let sign_in = if user.mail.is_empty() {
            &user.username
        } else {
            &user.mail
        };
        let mut b = json!({
            "EcosystemUrl": self.ecosystem_url(user, exp)?,
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
        let path = self.open.reva.get_home(reva).await.map_err(from_reva)?;
        let info = self
            .open
            .reva
            .stat_ref(
                reva,
                crate::pb::cs3::storage::provider::v1beta1::Reference {
                    resource_id: None,
                    path,
                },
            )
            .await
            .map_err(from_reva)?;
        Ok(info)
    }

    async fn stat(&self, reva: &Secret, r: &Resource) -> Result<ResourceInfo, ApiError> {
        let info = self
            .open
            .reva
            .stat(reva, ResourceId::from(r))
            .await
            .map_err(from_reva)?;
        // Visible only with the stat permission (a file of another user is "not found").
        if !info.permission_set.as_ref().is_some_and(|p| p.stat) {
            return Err(not_found());
        }
        Ok(info)
    }

    fn container_info(&self, info: &ResourceInfo) -> Value {
        json!({
            "Name": display_name(info),
            "UserCanCreateChildContainer": false,
            "UserCanCreateChildFile": false,
            "UserCanDelete": false,
            "UserCanRename": false,
            "IsAnonymousUser": false,
            "IsEduUser": self.settings.is_edu_user,
            "LicenseCheckForEditIsEnabled": self.settings.license_check_for_edit,
        })
    }

    async fn root_container(
        &self,
        user: &UserClaim,
        reva: &Secret,
        exp: u64,
    ) -> Result<Value, ApiError> {
        let home = self.home(reva).await?;
        let r = Resource::from(&home.id.clone().unwrap_or_default());
        Ok(json!({
            "ContainerPointer": {"Name": display_name(&home), "Url": self.container_url(user, &r, exp)?},
            "ContainerInfo": self.container_info(&home),
        }))
    }

    /// `/wopibootstrapper`, authorised by the user's OAuth (OIDC) access token.
    pub async fn bootstrapper(&self, req: &MobileRequest<'_>) -> Answer {
        let Some(token) = req.authorization().and_then(oauth_bearer) else {
            return self.unauthorized("sign in required");
        };
        let principal = match self.open.validator.validate(&token).await {
            Ok(p) => p,
            Err(e) => return self.unauthorized(&e.to_string()),
        };
        match self.bootstrapper_as(req, &principal).await {
            Ok(a) => a,
            Err(e) => Answer {
                status: e.status().as_u16(),
                body: e.body(),
                challenge: None,
            },
        }
    }

    async fn bootstrapper_as(
        &self,
        req: &MobileRequest<'_>,
        principal: &crate::auth::Principal,
    ) -> Result<Answer, ApiError> {
        let user = self
            .open
            .exchanger
            .user_of(principal)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "the token names no user"))?;
        // OAuth-authenticated: the default lifetime, bounded by nothing shorter (wopi.md §2).
        let exp = now() + self.wrap()?.ttl.as_secs();
        let bootstrap = self.bootstrap(&user, exp)?;
        let operation = req.header("x-wopi-ecosystemoperation");
        if req.head.method == http::Method::GET || operation.is_none() {
            return Ok(Answer::ok(json!({ "Bootstrap": bootstrap })));
        }
        let reva = self.reva_token(&user).await?;
        match operation.as_deref() {
            Some("GET_ROOT_CONTAINER") => Ok(Answer::ok(json!({
                "Bootstrap": bootstrap,
                "RootContainerInfo": self.root_container(&user, &reva, exp).await?,
            }))),
            Some("GET_NEW_ACCESS_TOKEN") => {
                let src = req.header("x-wopi-wopisrc").ok_or_else(not_found)?;
                let (kind, resource) = self.parse_wopi_src(&src).ok_or_else(not_found)?;
                let info = self.stat(&reva, &resource).await?;
                let token = match (kind, info.r#type()) {
                    (Kind::File, ResourceType::File) => self.file_token(&user, &info, exp).await?,
                    (Kind::Container, ResourceType::Container) => {
                        let r = Resource::from(&info.id.clone().unwrap_or_default());
                        self.token(Kind::Container, &user, Some(r), exp)?
                    }
                    _ => return Err(not_found()),
                };
                Ok(Answer::ok(json!({
                    "Bootstrap": bootstrap,
                    "AccessTokenInfo": {"AccessToken": token, "AccessTokenExpiry": exp * 1000},
                })))
            }
            // Reserved by Microsoft (clients must not call it yet), and anything unknown.
            _ => Err(not_implemented()),
        }
    }

    /// A WopiSrc on this gateway's own origin only (wopi.md §7.4).
    fn parse_wopi_src(&self, src: &str) -> Option<(Kind, Resource)> {
        let url = url::Url::parse(src.trim()).ok()?;
        let origin = url::Url::parse(&self.public_url).ok()?;
        if url.origin() != origin.origin()
            || url.query().is_some_and(|q| q.contains("access_token"))
        {
            return None;
        }
        let rest = url
            .path()
            .strip_prefix(origin.path().trim_end_matches('/'))?;
        let (kind, id) = if let Some(id) = rest.strip_prefix("/wopi/files/") {
            (Kind::File, id)
        } else {
            (Kind::Container, rest.strip_prefix("/wopi/containers/")?)
        };
        if id.is_empty() || id.contains('/') {
            return None;
        }
        Some((kind, resource_of_path_id(id)?))
    }

    /// Verifies a gateway token for the mobile endpoints: sealed, unexpired, of `kind`, and
    /// (for containers and files) for the resource in the path.
    fn claims(
        &self,
        req: &MobileRequest<'_>,
        kind: Kind,
        path_id: Option<&str>,
    ) -> Result<Claims, ApiError> {
        let invalid = |m: &str| ApiError::new(ErrorCode::InvalidToken, m);
        let token = req
            .access_token
            .clone()
            .or_else(|| {
                req.authorization()
                    .and_then(|a| bearer_token(a).ok().map(str::to_owned))
            })
            .ok_or_else(|| invalid("access_token missing"))?;
        let claims = self
            .wrap()?
            .keys
            .verify(&token, now())
            .map_err(|e| invalid(&e.to_string()))?;
        if claims.kind != kind {
            return Err(invalid("the token is not for this kind of resource"));
        }
        if let Some(id) = path_id {
            let ok = claims
                .resource
                .as_ref()
                .is_some_and(|r| path_matches(id, r));
            if !ok {
                return Err(invalid("the token is not for this resource"));
            }
        }
        Ok(claims)
    }

    /// `/wopi/ecosystem…`, `/wopi/containers/…` and `/wopi/files/<id>/{ancestry,ecosystem_pointer}`.
    pub async fn wopi(&self, req: &MobileRequest<'_>) -> Result<Answer, ApiError> {
        let segs: Vec<&str> = req.head.uri.path().trim_matches('/').split('/').collect();
        let get = req.head.method == http::Method::GET;
        match (segs.as_slice(), get) {
            (["wopi", "ecosystem"], true) => {
                self.claims(req, Kind::Ecosystem, None)?;
                Ok(Answer::ok(json!({"SupportsContainers": true})))
            }
            (["wopi", "ecosystem", "root_container_pointer"], true) => {
                let c = self.claims(req, Kind::Ecosystem, None)?;
                let reva = self.reva_token(&c.user).await?;
                Ok(Answer::ok(
                    self.root_container(&c.user, &reva, c.exp).await?,
                ))
            }
            (["wopi", "containers", id], true) => {
                let c = self.claims(req, Kind::Container, Some(id))?;
                let info = self.container(&c).await?;
                Ok(Answer::ok(self.container_info(&info)))
            }
            (["wopi", "containers", id, "children"], true) => {
                let c = self.claims(req, Kind::Container, Some(id))?;
                self.children(req, &c).await
            }
            (["wopi", "containers", id, "ancestry"], true) => {
                let c = self.claims(req, Kind::Container, Some(id))?;
                self.ancestry(&c).await
            }
            (["wopi", "files", id, "ancestry"], true) => {
                let c = self.claims(req, Kind::File, Some(id))?;
                self.ancestry(&c).await
            }
            (["wopi", "containers", id, "ecosystem_pointer"], true) => {
                let c = self.claims(req, Kind::Container, Some(id))?;
                Ok(Answer::ok(
                    json!({"Url": self.ecosystem_url(&c.user, c.exp)?}),
                ))
            }
            (["wopi", "files", id, "ecosystem_pointer"], true) => {
                let c = self.claims(req, Kind::File, Some(id))?;
                Ok(Answer::ok(
                    json!({"Url": self.ecosystem_url(&c.user, c.exp)?}),
                ))
            }
            // Container writes, GetShareUrl and GetFileWopiSrc are not implemented against REVA.
            (["wopi", "containers", id], false) => {
                self.claims(req, Kind::Container, Some(id))?;
                Err(not_implemented())
            }
            (["wopi", "ecosystem"], false) => {
                self.claims(req, Kind::Ecosystem, None)?;
                Err(not_implemented())
            }
            _ => Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
        }
    }

    async fn container(&self, c: &Claims) -> Result<ResourceInfo, ApiError> {
        let r = c.resource.as_ref().ok_or_else(not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let info = self.stat(&reva, r).await?;
        if info.r#type() != ResourceType::Container {
            return Err(not_found());
        }
        Ok(info)
    }

    /// EnumerateChildren: every child, files filtered by `X-WOPI-FileExtensionFilterList`;
    /// children's URLs carry fresh tokens with the calling token's expiry (wopi.md §2).
    async fn children(&self, req: &MobileRequest<'_>, c: &Claims) -> Result<Answer, ApiError> {
        let r = c.resource.as_ref().ok_or_else(not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let info = self.stat(&reva, r).await?;
        if info.r#type() != ResourceType::Container {
            return Err(not_found());
        }
        let filter: Option<Vec<String>> = req.header("x-wopi-fileextensionfilterlist").map(|f| {
            f.split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect()
        });
        let list = self
            .open
            .reva
            .list_container(&reva, ResourceId::from(r))
            .await
            .map_err(from_reva)?;
        let (mut containers, mut files) = (Vec::new(), Vec::new());
        for child in &list {
            if !child.permission_set.as_ref().is_some_and(|p| p.stat) {
                continue;
            }
            let Some(id) = &child.id else { continue };
            match child.r#type() {
                ResourceType::Container => containers.push(json!({
                    "Name": display_name(child),
                    "Url": self.container_url(&c.user, &Resource::from(id), c.exp)?,
                })),
                ResourceType::File => {
                    let name = display_name(child);
                    if let Some(f) = &filter {
                        let ext = crate::open::extension_of(&name).unwrap_or_default();
                        if !f.contains(&ext) {
                            continue;
                        }
                    }
                    let mut entry = json!({
                        "Name": name,
                        "Url": self.file_url(&c.user, child, c.exp).await?,
                        "Version": version_of(child),
                        "Size": child.size,
                    });
                    if let Some(t) = &child.mtime {
                        entry["LastModifiedTime"] = json!(time::iso8601(t.seconds, t.nanos));
                    }
                    files.push(entry);
                }
                _ => {}
            }
        }
        Ok(Answer::ok(
            json!({"ChildContainers": containers, "ChildFiles": files}),
        ))
    }

    /// EnumerateAncestors: parents up to the user's home (the root container), root first.
    async fn ancestry(&self, c: &Claims) -> Result<Answer, ApiError> {
        let r = c.resource.as_ref().ok_or_else(not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let home = self.home(&reva).await?;
        let home_id = home.id.clone().unwrap_or_default();
        let mut info = self.stat(&reva, r).await?;
        let mut chain = Vec::new();
        // Bounded walk: a cycle or a very deep tree cannot hold the request.
        for _ in 0..64 {
            let is_home = info.id.as_ref().is_some_and(|i| {
                i.storage_id == home_id.storage_id && i.opaque_id == home_id.opaque_id
            });
            if is_home {
                break;
            }
            let Some(parent) = info.parent_id.clone() else {
                break;
            };
            info = self.stat(&reva, &Resource::from(&parent)).await?;
            chain.push(json!({
                "Name": display_name(&info),
                "Url": self.container_url(&c.user, &Resource::from(&parent), c.exp)?,
            }));
        }
        chain.reverse();
        Ok(Answer::ok(json!({"AncestorsWithRootFirst": chain})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_or_without_colon() {
        assert_eq!(oauth_bearer(b"Bearer abc").as_deref(), Some("abc"));
        assert_eq!(oauth_bearer(b"Bearer: abc").as_deref(), Some("abc"));
        assert_eq!(oauth_bearer(b"bearer:abc").as_deref(), Some("abc"));
        assert_eq!(oauth_bearer(b"Basic abc"), None);
        assert_eq!(oauth_bearer(b"Bearer "), None);
        assert_eq!(oauth_bearer(b"Bearer:"), None);
    }
}
