//! OpenID Connect Back-Channel Logout 1.0: the IdP tells the gateway that a session (`sid`) or
//! a user (`sub` alone) logged out, and every token descending from it stops working on every
//! replica (a revocation, [`crate::control`]). Answers as §2.8 says: 200 on success, 400 with
//! an OAuth error body otherwise (503 when the revocation could not be shared: worth a retry).

use std::sync::Arc;

use serde_json::json;

use crate::auth::logout::{Logout, LogoutVerifier};
use crate::control::Control;
use crate::control::revocation::Scope;
use crate::error::Reply;

pub struct BackchannelLogout {
    pub verifier: LogoutVerifier,
    pub control: Arc<Control>,
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    let mut r = Reply::json(&json!({"error": error, "error_description": description}));
    r.status = status;
    r
}

fn count(outcome: &str) {
    crate::metrics::metrics()
        .control
        .backchannel_logouts
        .with_label_values(&[outcome])
        .inc();
}

impl BackchannelLogout {
    /// `form`: the request's `application/x-www-form-urlencoded` body.
    pub async fn serve(&self, form: &[u8]) -> Reply {
        let mut tokens = url::form_urlencoded::parse(form).filter(|(k, _)| k == "logout_token");
        let token = match (tokens.next(), tokens.next()) {
            (Some((_, t)), None) => t,
            _ => {
                count("invalid");
                return oauth_error(400, "invalid_request", "exactly one logout_token");
            }
        };
        let logout = match self.verifier.verify(&token).await {
            Ok(l) => l,
            Err(e) => {
                count("invalid");
                tracing::warn!(target: "wopigate::audit", action = "backchannel_logout", reason = %e, "logout token refused");
                return oauth_error(400, "invalid_request", &e.to_string());
            }
        };
        self.end(&logout).await.unwrap_or_else(|refused| refused)
    }

    async fn end(&self, l: &Logout) -> Result<Reply, Reply> {
        let unavailable = |_| {
            count("unavailable");
            oauth_error(
                503,
                "temporarily_unavailable",
                "the shared store is unreachable",
            )
        };
        if !self
            .control
            .first_use_of_jti(&l.jti, l.remember_until)
            .await
            .map_err(unavailable)?
        {
            count("replayed");
            return Err(oauth_error(400, "invalid_request", "logout token replayed"));
        }
        let scope = match (&l.sid, &l.sub) {
            (Some(sid), _) => Scope::Sid(sid.clone()),
            (None, Some(sub)) => Scope::User(sub.clone()),
            (None, None) => return Err(oauth_error(400, "invalid_request", "neither sub nor sid")),
        };
        let entry = self
            .control
            .revoke(scope, None, "logout")
            .await
            .map_err(unavailable)?;
        count("ok");
        tracing::info!(
            target: "wopigate::audit",
            action = "backchannel_logout",
            entry = %serde_json::to_string(&entry).unwrap_or_default(),
            "session logged out"
        );
        Ok(Reply::json(&json!({})))
    }
}
