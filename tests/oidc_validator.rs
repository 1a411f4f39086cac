//! The OIDC validator against tokens signed by the test IdP: algorithms, keys, claims and the
//! malformed tokens an attacker would send.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use wopigate::auth::{AuthError, JwksSource, KeySet, OidcValidator, ValidatorSettings};
use wopigate_testkit::test_idp::{SigningKey, TestIdp, now};

const ISS: &str = "https://idp.test";

fn validator(idp: &TestIdp, algorithms: Vec<Algorithm>) -> OidcValidator {
    let keys = KeySet::from_jwks_json(idp.jwks().to_string().as_bytes()).unwrap();
    OidcValidator::new(
        ValidatorSettings {
            issuer: ISS.into(),
            audience: "wopigate".into(),
            algorithms,
            leeway: Duration::from_secs(60),
            max_token_bytes: 16 * 1024,
            cache_entries: 100,
        },
        Arc::new(JwksSource::fixed(keys)),
    )
}

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "aud": "wopigate", "sub": "alice-sub", "exp": now() + 600, "iat": now()})
}

#[tokio::test]
async fn accepts_rs256_and_es256_and_caches() {
    let idp = TestIdp::new("wopigate");
    let v = validator(&idp, vec![Algorithm::RS256, Algorithm::ES256]);
    let t = idp.sign("rsa-1", &claims());
    let a = v.validate(&t).await.unwrap();
    assert_eq!(a.claim_str("sub"), Some("alice-sub"));
    let b = v.validate(&t).await.unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "second validation served from the cache"
    );
    assert!(v.validate(&idp.sign("ec-1", &claims())).await.is_ok());
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let idp = TestIdp::new("wopigate");
    let v = validator(&idp, vec![Algorithm::RS256]);
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        f(&mut c);
        idp.sign("rsa-1", &c)
    };
    let cases: Vec<(&str, String, AuthError)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 120)),
            AuthError::Expired,
        ),
        (
            "nbf",
            with(&|c| c["nbf"] = json!(now() + 120)),
            AuthError::NotYetValid,
        ),
        (
            "iss",
            with(&|c| c["iss"] = json!("https://idp.test/")),
            AuthError::WrongIssuer,
        ),
        (
            "aud",
            with(&|c| c["aud"] = json!("other")),
            AuthError::WrongAudience,
        ),
        (
            "no aud",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            AuthError::WrongAudience,
        ),
        (
            "exp as string",
            with(&|c| c["exp"] = json!("9999999999")),
            AuthError::InvalidClaims,
        ),
        (
            "ES256 not allowed",
            idp.sign("ec-1", &claims()),
            AuthError::AlgorithmNotAllowed,
        ),
        ("garbage", "a.b.c".into(), AuthError::Malformed),
        ("JWE shape", "a.b.c.d.e".into(), AuthError::Malformed),
        ("too large", "a".repeat(20_000), AuthError::TokenTooLarge),
    ];
    for (name, token, want) in cases {
        assert_eq!(v.validate(&token).await.unwrap_err(), want, "{name}");
    }
    // Within the leeway is fine.
    assert!(
        v.validate(&with(&|c| c["exp"] = json!(now() - 30)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn header_abuse_is_refused() {
    let idp = TestIdp::new("wopigate");
    let v = validator(&idp, vec![Algorithm::RS256, Algorithm::ES256]);
    let rsa = idp.key("rsa-1").unwrap();
    let sign = |h: Header, key: &EncodingKey| jsonwebtoken::encode(&h, &claims(), key).unwrap();

    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let confused = sign(h, &EncodingKey::from_secret(rsa.public_pem.as_bytes()));
    assert_eq!(
        v.validate(&confused).await.unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );

    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    h.crit = Some(vec!["exp".into()]);
    assert_eq!(
        v.validate(&sign(h, &rsa.encoding)).await.unwrap_err(),
        AuthError::UnsupportedHeader
    );

    let mut h = Header::new(Algorithm::RS256);
    h.kid = None;
    assert_eq!(
        v.validate(&sign(h, &rsa.encoding)).await.unwrap_err(),
        AuthError::MissingKid
    );

    // An EC key id claimed for an RSA signature: the key type is bound to the algorithm.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("ec-1".into());
    assert_eq!(
        v.validate(&sign(h, &rsa.encoding)).await.unwrap_err(),
        AuthError::AlgorithmNotAllowed
    );

    let rogue = SigningKey::rsa("rogue");
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rogue".into());
    assert_eq!(
        v.validate(&sign(h, &rogue.encoding)).await.unwrap_err(),
        AuthError::UnknownKid
    );

    // Right kid, wrong key: a signature that does not verify.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    assert_eq!(
        v.validate(&sign(h, &rogue.encoding)).await.unwrap_err(),
        AuthError::BadSignature
    );
}
