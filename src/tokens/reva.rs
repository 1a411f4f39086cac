//! The REVA access token: claim layout (reva.md §2) and minting (reva.md §3).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// `cs3.identity.user.v1beta1.UserId` as Go `encoding/json` writes it: snake_case, enums as
/// integers, zero values omitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct UserIdClaim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub idp: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub opaque_id: String,
    #[serde(rename = "type", default, skip_serializing_if = "is_zero")]
    pub user_type: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// `cs3.identity.user.v1beta1.User` in the token's `user` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct UserClaim {
    #[serde(default)]
    pub id: UserIdClaim,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mail: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mail_verified: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// `cs3.auth.provider.v1beta1.Scope`: an `OpaqueEntry` resource and a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeClaim {
    pub resource: OpaqueEntryClaim,
    #[serde(default)]
    pub role: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpaqueEntryClaim {
    pub decoder: String,
    /// Standard base64 (Go encodes `[]byte` that way).
    pub value: String,
}

/// Role OWNER of `cs3.auth.provider.v1beta1.Role`.
pub const ROLE_OWNER: i32 = 1;
/// USER_TYPE_PRIMARY.
pub const USER_TYPE_PRIMARY: i32 = 1;

/// The owner scope of a full login (`GetOwnerScope`): resource `{"path":"/"}`, role OWNER.
pub fn owner_scope() -> std::collections::BTreeMap<String, ScopeClaim> {
    let mut scope = std::collections::BTreeMap::new();
    scope.insert(
        "user".to_owned(),
        ScopeClaim {
            resource: OpaqueEntryClaim {
                decoder: "json".into(),
                value: STANDARD.encode(br#"{"path":"/"}"#),
            },
            role: ROLE_OWNER,
        },
    );
    scope
}

/// Full claim set of a REVA token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevaClaims {
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    /// A string (REVA v1 parses only that; v2/v3 accept it too).
    pub aud: serde_json::Value,
    pub user: UserClaim,
    pub scope: std::collections::BTreeMap<String, ScopeClaim>,
}

/// A REVA token and when it stops working.
#[derive(Debug, Clone)]
pub struct RevaToken {
    pub token: Secret,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

/// Mints an HS256 REVA token for `user` with owner scope (the identity comes from a full OIDC
/// login, reva.md §3 rule 3). `iat` is backdated a little: REVA v1 rejects a future `iat`.
pub fn mint(
    secret: &EncodingKey,
    user: &UserClaim,
    ttl: Duration,
    now: u64,
) -> Result<RevaToken, jsonwebtoken::errors::Error> {
    let claims = RevaClaims {
        exp: now + ttl.as_secs(),
        iat: now.saturating_sub(5),
        iss: user.id.idp.clone(),
        aud: serde_json::Value::String("reva".into()),
        user: user.clone(),
        scope: owner_scope(),
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, secret)?;
    Ok(RevaToken {
        token: Secret::new(token),
        expires_at: claims.exp,
    })
}

/// Reads `exp` from a token's payload without verifying it. Only for advertising lifetimes of
/// tokens another party verifies (the wopiserver's, REVA's from `Authenticate`), never for trust.
pub fn unverified_exp(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    unverified_payload::<Exp>(token).map(|e| e.exp)
}

/// A REVA token's claims read without verifying it: only for a token REVA itself accepts on
/// the next call (the one inside a wopiserver token), never for trust on its own.
pub fn unverified_claims(token: &str) -> Option<RevaClaims> {
    unverified_payload(token)
}

/// The user's opaque id and the `iat` of a REVA token, read leniently (any REVA's token,
/// whatever else it carries or lacks).
pub fn unverified_login(token: &str) -> Option<(String, u64)> {
    #[derive(Deserialize)]
    struct Login {
        #[serde(default)]
        iat: u64,
        #[serde(default)]
        user: UserClaim,
    }
    let l: Login = unverified_payload(token)?;
    Some((l.user.id.opaque_id, l.iat))
}

fn unverified_payload<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_token_has_the_reva_layout() {
        let user = UserClaim {
            id: UserIdClaim {
                idp: "https://idp.example".into(),
                opaque_id: "4c510ada".into(),
                user_type: USER_TYPE_PRIMARY,
            },
            username: "alice".into(),
            display_name: "Alice".into(),
            ..Default::default()
        };
        let t = mint(
            &EncodingKey::from_secret(b"s3cret"),
            &user,
            Duration::from_secs(600),
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(t.expires_at, 1_700_000_600);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.validate_aud = false;
        let raw: serde_json::Value =
            jsonwebtoken::decode(t.token.expose(), &DecodingKey::from_secret(b"s3cret"), &v)
                .unwrap()
                .claims;
        assert_eq!(raw["aud"], "reva");
        assert_eq!(raw["iss"], "https://idp.example");
        assert_eq!(raw["iat"], 1_699_999_995u64);
        assert_eq!(
            raw["user"]["id"],
            serde_json::json!({"idp": "https://idp.example", "opaque_id": "4c510ada", "type": 1})
        );
        assert!(raw["user"].get("mail").is_none(), "zero values are omitted");
        assert_eq!(raw["scope"]["user"]["role"], 1);
        assert_eq!(raw["scope"]["user"]["resource"]["decoder"], "json");
        // reva.md §2.2: the spec's own example value
        assert_eq!(
            raw["scope"]["user"]["resource"]["value"],
            "eyJwYXRoIjoiLyJ9"
        );
        assert_eq!(unverified_exp(t.token.expose()), Some(1_700_000_600));
    }
}
