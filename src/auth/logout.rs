//! Logout tokens of OpenID Connect Back-Channel Logout 1.0 (§2.4, §2.6): verified like an ID
//! token against the IdP's keys (allow-listed algorithm, `kid`, exact `iss`), for one of the
//! clients whose sessions the gateway serves (`aud`), recently issued (`iat`), carrying the
//! logout event, a `sub` or a `sid`, a `jti`, and never a `nonce` (which would make it an ID
//! token replayed as a logout token).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::oidc::{MAX_SAFE_TIME, verified};
use super::{AuthError, JwksSource};
use crate::tokens::now;

/// The `events` member a logout token carries (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token older than this (plus the leeway) is refused: IdPs send them at once.
pub const MAX_AGE: u64 = 300;

/// What a verified logout token ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// Until when its `jti` must be remembered (afterwards the token is too old anyway).
    pub remember_until: u64,
}

/// Why a logout token was refused: the `error_description` the IdP gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("{0}")]
    Token(#[from] AuthError),
    #[error("{0}")]
    Claims(&'static str),
}

pub struct LogoutVerifier {
    validations: HashMap<Algorithm, Validation>,
    jwks: Arc<JwksSource>,
    leeway: u64,
}

impl LogoutVerifier {
    /// `clients`: the accepted `aud` values (`[oidc] logout_clients`, not empty).
    pub fn new(c: &crate::config::Oidc, jwks: Arc<JwksSource>) -> Self {
        let validations = c
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.set_issuer(&[&c.issuer]);
                v.set_audience(&c.logout_clients);
                v.leeway = c.leeway.as_secs();
                // `exp` is optional in a logout token; checked below when present.
                v.validate_exp = false;
                v.set_required_spec_claims(&["iss", "aud"]);
                (alg, v)
            })
            .collect();
        Self {
            validations,
            jwks,
            leeway: c.leeway.as_secs(),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Logout, LogoutError> {
        if token.len() > 16 * 1024 {
            return Err(AuthError::TokenTooLarge.into());
        }
        let (data, _) = verified(token, &self.validations, &self.jwks).await?;
        self.logout_of(&data.claims, now())
    }

    /// The claims' rules beyond the signature, `iss` and `aud`.
    fn logout_of(&self, c: &Map<String, Value>, now: u64) -> Result<Logout, LogoutError> {
        let time = |name: &str| {
            c.get(name)
                .map(|v| v.as_u64().filter(|t| *t <= MAX_SAFE_TIME))
        };
        let iat = match time("iat") {
            Some(Some(iat)) => iat,
            _ => return Err(LogoutError::Claims("iat missing or not an integer")),
        };
        if iat > now + self.leeway {
            return Err(LogoutError::Claims("issued in the future"));
        }
        if iat + MAX_AGE + self.leeway < now {
            return Err(LogoutError::Claims("issued too long ago"));
        }
        match time("exp") {
            Some(Some(exp)) if exp + self.leeway <= now => {
                return Err(AuthError::Expired.into());
            }
            Some(None) => return Err(LogoutError::Claims("exp is not an integer")),
            _ => {}
        }
        let is_logout = c
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get(LOGOUT_EVENT))
            .is_some_and(Value::is_object);
        if !is_logout {
            return Err(LogoutError::Claims(
                "events lacks the back-channel logout event",
            ));
        }
        if c.contains_key("nonce") {
            return Err(LogoutError::Claims("a logout token carries no nonce"));
        }
        let text = |name: &str| {
            c.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 1024)
                .map(str::to_owned)
        };
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err(LogoutError::Claims("neither sub nor sid"));
        }
        let jti = text("jti").ok_or(LogoutError::Claims("jti missing"))?;
        Ok(Logout {
            sub,
            sid,
            jti,
            remember_until: iat + MAX_AGE + 2 * self.leeway,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    impl LogoutVerifier {
        fn for_tests(leeway: Duration) -> Self {
            crate::http_client::install_crypto_provider();
            Self {
                validations: HashMap::new(),
                jwks: Arc::new(JwksSource::new(
                    reqwest::Client::new(),
                    url::Url::parse("http://127.0.0.1:9/.well-known/openid-configuration").unwrap(),
                    "http://127.0.0.1:9".into(),
                    Duration::from_secs(1),
                )),
                leeway: leeway.as_secs(),
            }
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_claims_rules_of_a_logout_token() {
        let v = LogoutVerifier::for_tests(Duration::from_secs(60));
        let now = 1_000_000;
        let good = json!({"iat": now, "jti": "j1", "sid": "s1",
            "events": {LOGOUT_EVENT: {}}});
        let l = v.logout_of(&claims(good.clone()), now).unwrap();
        assert_eq!(
            (l.sid.as_deref(), l.sub, l.jti.as_str()),
            (Some("s1"), None, "j1")
        );
        assert!(l.remember_until > now + MAX_AGE);
        let with = |k: &str, val: Value| {
            let mut g = good.clone();
            g[k] = val;
            claims(g)
        };
        let without = |k: &str| {
            let mut g = good.clone();
            g.as_object_mut().unwrap().remove(k);
            claims(g)
        };
        let refused = [
            with("nonce", json!("n")),
            with("events", json!({})),
            with("events", json!({LOGOUT_EVENT: "yes"})),
            with("iat", json!(now + 120)),
            with("iat", json!(now - MAX_AGE - 61)),
            with("iat", json!("1000000")),
            with("exp", json!(now - 61)),
            without("jti"),
            without("iat"),
            without("sid"),
        ];
        for c in refused {
            assert!(v.logout_of(&c, now).is_err(), "{c:?}");
        }
        // A sub alone is a logout of the user.
        let mut only_sub = without("sid");
        only_sub.insert("sub".into(), json!("alice"));
        assert_eq!(
            v.logout_of(&only_sub, now).unwrap().sub.as_deref(),
            Some("alice")
        );
    }
}
