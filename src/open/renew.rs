//! Renewal of the wopiserver token behind a gateway token (the gateway-token tree: sealing in
//! [`crate::tokens::gateway`], the remembered tokens in [`crate::tokens::remembered`], renewal
//! here, because it runs the open flow again). Any replica can renew from the gateway token
//! alone, with a REVA token it mints for the token's user — which also re-checks that user's
//! permissions.

use super::{OpenAs, OpenService};
use crate::error::{ApiError, ErrorCode};
use crate::pb::cs3::storage::provider::v1beta1::ResourceId;
use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::tokens::remembered as wrap;
use crate::tokens::reva::unverified_exp;
use crate::wopiserver::ViewMode;

impl OpenService {
    /// The wopiserver token behind a gateway token: cached, or a fresh `openinapp` with a REVA
    /// token minted for the token's user (which also re-checks the user's permissions).
    pub async fn upstream_token(
        &self,
        gateway_token: &str,
        claims: &Claims,
        trace_id: &str,
    ) -> Result<Secret, ApiError> {
        let wrap = self
            .wrap
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "gateway tokens are off"))?;
        if let Some(t) = wrap.cached(gateway_token).await {
            return Ok(t);
        }
        let resource = claims
            .resource
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "not a file token"))?;
        let reva_token = self.exchanger.for_user(&claims.user).await?;
        let userid = format!("{}@{}", claims.user.id.opaque_id, claims.user.id.idp);
        let result = self
            .open_as(&OpenAs {
                reva_token: &reva_token,
                username: &claims.user.display_name,
                userid: &userid,
                id: ResourceId::from(resource),
                app_name: claims.app.as_deref(),
                view_mode: claims.view_mode.as_deref().and_then(ViewMode::parse),
                trace_id,
                fallback_ext: None,
            })
            .await?;
        let upstream_exp = unverified_exp(result.access_token.expose()).unwrap_or(0);
        wrap.remember(
            gateway_token,
            result.access_token.clone(),
            wrap::upstream_until(upstream_exp, reva_token.expires_at, claims.exp),
        )
        .await;
        Ok(result.access_token)
    }
}
