//! Reading a wopiserver access token's payload without its key. The wopiserver still verifies the
//! signature; the gateway only uses these claims to refuse early (expired tokens), to pick the
//! office app for proof checks, never to grant anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The claims wopigate reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct UnverifiedClaims {
    #[serde(default)]
    pub exp: u64,
    #[serde(default)]
    pub appname: String,
    /// For cs3 storage: the REVA token, in clear.
    #[serde(default)]
    pub userid: String,
}

/// `None` when the token is not a JWT with a JSON payload.
pub fn read(token: &str) -> Option<UnverifiedClaims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The earlier of the WOPI token's `exp` and, when `userid` is a JWT (a REVA token), its `exp`.
pub fn effective_exp(c: &UnverifiedClaims) -> u64 {
    match crate::tokens::reva::unverified_exp(&c.userid) {
        Some(reva) => reva.min(c.exp),
        None => c.exp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_claims_and_the_embedded_reva_expiry() {
        let reva = format!("x.{}.y", URL_SAFE_NO_PAD.encode(r#"{"exp":100}"#));
        let wopi = format!(
            "h.{}.s",
            URL_SAFE_NO_PAD.encode(
                serde_json::json!({"exp": 200, "appname": "Collabora", "userid": reva}).to_string()
            )
        );
        let c = read(&wopi).unwrap();
        assert_eq!((c.exp, c.appname.as_str()), (200, "Collabora"));
        assert_eq!(effective_exp(&c), 100);
        assert!(read("not-a-jwt").is_none());
        assert!(read("a.b.c.d").is_none());
        assert!(read("a.!!!.c").is_none());
    }
}
