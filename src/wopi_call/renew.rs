//! Renewal of the wopiserver token behind a gateway token (sealing in
//! [`crate::tokens::gateway`], the remembered tokens in [`crate::tokens::remembered`]). Any
//! replica can renew from the gateway token alone, running the open flow again with a REVA
//! token it mints for the token's user — which also re-checks that user's permissions.

use super::GatewayTokens;
use crate::error::{ApiError, ErrorCode};
use crate::open::OpenAs;
use crate::pb::cs3::storage::provider::v1beta1::ResourceId;
use crate::secret::Secret;
use crate::tokens::gateway::Claims;

impl GatewayTokens {
    /// The wopiserver token behind a gateway token: cached, or a fresh `openinapp` with a REVA
    /// token minted for the token's user.
    pub async fn upstream_token(
        &self,
        gateway_token: &str,
        claims: &Claims,
        trace_id: &str,
    ) -> Result<Secret, ApiError> {
        if let Some(t) = self.wrap.cached(gateway_token).await {
            self.recheck(gateway_token, claims).await?;
            return Ok(t);
        }
        let file = claims
            .file()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "not a file token"))?;
        let reva_token = self.open.backends.exchanger.for_user(&claims.user).await?;
        let userid = format!("{}@{}", claims.user.id.opaque_id, claims.user.id.idp);
        let result = self
            .open
            .open_as(&OpenAs {
                reva_token: &reva_token,
                username: &claims.user.display_name,
                userid: &userid,
                id: ResourceId::from(&file.resource),
                app_name: file.app.as_deref(),
                view_mode: Some(file.view_mode),
                trace_id,
                fallback_ext: None,
            })
            .await?;
        self.wrap
            .remember_behind(
                gateway_token,
                claims,
                &result.access_token,
                reva_token.expires_at,
            )
            .await;
        Ok(result.access_token)
    }
}
