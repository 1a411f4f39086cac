//! Access re-checked while a document stays open (issue #26 point 2). A gateway token's
//! remembered wopiserver token would otherwise be used until it expires, whatever became of
//! the share behind it. Before using one, the gateway asks REVA again (Stat, with a REVA token
//! it mints for the user) at most every `tokens.recheck_seconds` per file and user — one
//! question for all the requests of that moment — and a file that is gone or no longer the
//! user's ends the session then: 404 (a share removed looks like a file gone, as at the open).
//! A REVA that does not answer ends nothing: the wopiserver needs REVA for the call anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::GatewayTokens;
use crate::error::ApiError;
use crate::pb::cs3::storage::provider::v1beta1::{ResourceId, ResourceType};
use crate::reva::RevaError;
use crate::tokens::gateway::Claims;
use crate::tokens::remembered::confirmed_key;

fn count(outcome: &str) {
    crate::metrics::metrics()
        .control
        .rechecks
        .with_label_values(&[outcome])
        .inc();
}

impl GatewayTokens {
    /// Before a remembered wopiserver token is used: REVA asked again when due. A session whose
    /// file is gone for the user loses its remembered token and is refused.
    pub(super) async fn recheck(
        &self,
        gateway_token: &str,
        claims: &Claims,
    ) -> Result<(), ApiError> {
        let (Some(key), Some(file)) = (confirmed_key(claims), claims.file()) else {
            return Ok(());
        };
        let asked = AtomicBool::new(false);
        let backends = &self.open.backends;
        let verdict = self
            .wrap
            .confirmed
            .try_get_with(key, async {
                asked.store(true, Ordering::Relaxed);
                let reva = backends
                    .exchanger
                    .for_user(&claims.user)
                    .await
                    .map_err(|_| RevaError::Unavailable)?;
                let info = backends
                    .reva
                    .stat(&reva.token, ResourceId::from(&file.resource))
                    .await?;
                match info.r#type() {
                    ResourceType::File => Ok(()),
                    _ => Err(RevaError::NotFound),
                }
            })
            .await;
        match verdict {
            Ok(()) => {
                if asked.load(Ordering::Relaxed) {
                    count("granted");
                }
                Ok(())
            }
            Err(e) => match Arc::unwrap_or_clone(e) {
                RevaError::Unavailable | RevaError::Timeout | RevaError::Upstream(_) => {
                    count("unavailable");
                    Ok(())
                }
                other => {
                    count("ended");
                    self.wrap.forget(gateway_token).await;
                    tracing::info!(target: "wopigate::audit", action = "recheck", reason = %other, "session ended: access is gone");
                    Err(ApiError::from(other).hiding_existence())
                }
            },
        }
    }
}
