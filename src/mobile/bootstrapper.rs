//! The bootstrapper (wopi.md §7): the OAuth2-authenticated entry of Office for iOS/Android.
//! Bootstrap, GetRootContainer and GetNewAccessToken; a 401 with the sign-in challenge when the
//! app has no valid token yet.

use crate::rate::Scope;
use serde_json::json;

use super::{MobileRequest, MobileService, not_implemented, quoted, resource_of};
use crate::control::revocation::Presented;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::ids::{Resource, resource_of_path_id};
use crate::pb::cs3::storage::provider::v1beta1::ResourceType;
use crate::tokens::carriers::{self, BearerForm};
use crate::tokens::gateway::{Claims, Grant, Kind, Login};
use crate::tokens::now;
use crate::wopi::operation::WopiOperation;

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

    fn unauthorized(&self, message: &str) -> Reply {
        self.refuse(ErrorCode::InvalidToken, message)
    }

    /// A 401 with the sign-in challenge: the app signs the user in again.
    fn refuse(&self, code: ErrorCode, message: &str) -> Reply {
        Reply::refuse(code, message).with_header("WWW-Authenticate", self.challenge())
    }

    /// `/wopibootstrapper`, authorised by the user's OAuth (OIDC) access token.
    pub(super) async fn bootstrapper(&self, op: WopiOperation, req: &MobileRequest<'_>) -> Reply {
        let Some(token) = req
            .authorization()
            .and_then(|v| carriers::bearer(v, BearerForm::AllowColon).ok())
        else {
            return self.unauthorized("sign in required");
        };
        let principal = match self.backends.validator.validate(token).await {
            Ok(p) => p,
            Err(e) => return self.unauthorized(&e.to_string()),
        };
        let login = Presented::oidc(&principal.claims, None);
        if self.backends.control.revoked(&login, "mobile") {
            return self.refuse(ErrorCode::Revoked, "access revoked");
        }
        if let Err(wait) = self.backends.rate_limits.user(
            Scope::Bootstrap,
            principal.claim_str("sub").unwrap_or_default(),
        ) {
            return ApiError::rate_limited(wait).into();
        }
        match self.bootstrapper_as(op, req, &principal).await {
            Ok(a) => a,
            Err(e) => e.into(),
        }
    }

    async fn bootstrapper_as(
        &self,
        op: WopiOperation,
        req: &MobileRequest<'_>,
        principal: &crate::auth::Principal,
    ) -> Result<Reply, ApiError> {
        let user = self
            .backends
            .exchanger
            .user_of(principal)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "the token names no user"))?;
        // OAuth-authenticated: the default lifetime, bounded by nothing shorter (wopi.md §2).
        let exp = now() + self.wrap.ttl.as_secs();
        let login = Login::of(&principal.claims, &user);
        let from = Claims {
            grant: Grant::Ecosystem,
            user,
            mobile: true,
            exp,
            login,
        };
        let user = &from.user;
        let bootstrap = self.bootstrap(&from)?;
        if op == WopiOperation::Bootstrap {
            return Ok(Reply::json(&json!({ "Bootstrap": bootstrap })));
        }
        let reva = self.reva_token(user).await?;
        match op {
            WopiOperation::GetRootContainer => Ok(Reply::json(&json!({
                "Bootstrap": bootstrap,
                "RootContainerInfo": self.root_container(&from, &reva).await?,
            }))),
            WopiOperation::GetNewAccessToken => {
                let src = req
                    .header("x-wopi-wopisrc")
                    .ok_or_else(ApiError::not_found)?;
                let (kind, resource) = self.parse_wopi_src(&src).ok_or_else(ApiError::not_found)?;
                let info = self.stat(&reva, &resource).await?;
                let token = match (kind, info.r#type()) {
                    (Kind::File, ResourceType::File) => self.file_token(&from, &info).await?,
                    (Kind::Container, ResourceType::Container) => {
                        self.token(Grant::Container(resource_of(&info)?), &from)
                    }
                    _ => return Err(ApiError::not_found()),
                };
                Ok(Reply::json(&json!({
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
}
