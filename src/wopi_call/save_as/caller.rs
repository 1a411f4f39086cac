//! Who asks for a Save As, from the token the request carried: a gateway token (already
//! checked at admission) or a wopiserver token, which only the wopiserver can vouch for.

use crate::error::{ApiError, ErrorCode};
use crate::ids::Resource;
use crate::secret::Secret;
use crate::tokens::gateway::Login;
use crate::tokens::reva::{RevaToken, UserClaim, unverified_claims};
use crate::wopi::ViewMode;
use crate::wopi_call::{GatewayCall, GatewayTokens};

/// Who asks, from the token the request carried.
pub struct Caller {
    pub user: UserClaim,
    pub reva: RevaToken,
    pub source: Resource,
    /// The office app the source was opened with.
    pub app: Option<String>,
    /// The token may write (`VIEW_MODE_READ_WRITE`).
    pub writable: bool,
    /// Expiry of the token asked with: the new file's token lives no longer.
    pub exp: u64,
    /// The login the token asked with descends from: the new file's token keeps it.
    pub login: Login,
}

impl GatewayTokens {
    /// The holder of a gateway token, with a REVA token for them.
    pub async fn gateway_caller(&self, call: &GatewayCall) -> Result<Caller, ApiError> {
        let c = &call.claims;
        let file = c
            .file()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "not a file token"))?;
        Ok(Caller {
            reva: (*self.open.backends.exchanger.for_user(&c.user).await?).clone(),
            user: c.user.clone(),
            source: file.resource.clone(),
            app: file.app.clone(),
            writable: c.writable(),
            exp: c.exp,
            login: c.login.clone(),
        })
    }

    /// Who holds a wopiserver token. The gateway cannot check the token's signature (the
    /// wopiserver's key stays with it), so its claims decide nothing until the wopiserver has
    /// answered CheckFileInfo for exactly that token: then they are the ones it signed, and the
    /// holder may write only when it says `UserCanWrite`. `path_query` is the request's own path
    /// and query (the token is in it; PutRelativeFile's path is the file's, as CheckFileInfo's).
    pub async fn wopiserver_caller(
        &self,
        token: &str,
        path_query: &str,
    ) -> Result<Caller, ApiError> {
        let not_wopi = || ApiError::new(ErrorCode::InvalidToken, "not a WOPI token");
        let c = crate::tokens::wopiserver::read(token).ok_or_else(not_wopi)?;
        let (storage_id, space_id) = c.endpoint.split_once('$').unwrap_or((&c.endpoint, ""));
        let info = match self
            .open
            .backends
            .wopiserver
            .check_file_info((storage_id, &c.fileid), path_query)
            .await?
        {
            (200, Some(info)) => info,
            (401, _) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidToken,
                    "the wopiserver does not accept the token",
                ));
            }
            (404, _) => return Err(ApiError::not_found()),
            (status, _) => return Err(crate::wopiserver::WopiserverError::Rejected(status).into()),
        };
        let reva = unverified_claims(&c.userid).ok_or_else(not_wopi)?;
        if storage_id.is_empty() || c.fileid.is_empty() {
            return Err(not_wopi());
        }
        let expiry_ms = info["AccessTokenExpiry"].as_u64();
        // A wopiserver token's login is the REVA token inside it.
        let login = Login {
            iat: reva.iat,
            ..Login::default()
        };
        Ok(Caller {
            login,
            user: reva.user,
            reva: RevaToken {
                token: Secret::new(c.userid.as_str()),
                expires_at: reva.exp,
            },
            source: Resource {
                storage_id: storage_id.to_owned(),
                space_id: space_id.to_owned(),
                opaque_id: c.fileid.clone(),
            },
            app: Some(c.appname.clone()).filter(|a| !a.is_empty()),
            writable: info["UserCanWrite"].as_bool() == Some(true)
                && c.viewmode == ViewMode::ReadWrite.as_str(),
            exp: expiry_ms.map_or(c.exp, |ms| c.exp.min(ms / 1000)),
        })
    }
}
