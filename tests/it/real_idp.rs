//! The gateway against a real OpenID Connect provider (`oidc-provider` from npm): tokens from a
//! genuine authorization-code login, RS256 and ES256, key rotation without restarting the
//! gateway, a retired key's tokens refused even when cached, and an IdP outage.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wopigate::ids::encode_legacy;
use wopigate_testkit::real_idp::{KeySpec, RESOURCE, RealIdp};
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::{legacy_open, start};

/// The JWKS during rotation: `signing` signs RS256 tokens, `previous` is still published, and
/// `ec-1` signs ES256 throughout.
fn published(signing: &str, previous: &str) -> [KeySpec; 3] {
    [
        KeySpec::rsa(signing),
        KeySpec::rsa(previous),
        KeySpec::ec("ec-1"),
    ]
}

fn header_of(token: &str) -> serde_json::Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

/// Logs `user` in through the client signing with `alg`, checks the token's header, and returns
/// the token.
async fn login(idp: &RealIdp, alg: &str, user: &str, kid: &str) -> String {
    let tokens = idp
        .login(alg, user)
        .await
        .unwrap_or_else(|e| panic!("login failed: {e}\n{}", idp.log()));
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.expires_in > 0);
    let header = header_of(&tokens.access_token);
    assert_eq!(header["alg"], alg);
    assert_eq!(header["kid"], kid, "signed by the expected key");
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 access token");
    tokens.access_token
}

async fn open_status(stack: &Stack, token: &str) -> (u16, serde_json::Value) {
    legacy_open(stack, token, &encode_legacy(STORAGE, "file-docx")).await
}

/// Nothing reached REVA or the wopiserver since the last clear: a refused token stops at the
/// gateway.
fn assert_nothing_upstream(stack: &Stack) {
    assert!(stack.reva.calls().is_empty(), "{:?}", stack.reva.calls());
    assert!(stack.wopiserver.requests().is_empty());
}

fn clear(stack: &Stack) {
    stack.reva.clear_calls();
    stack.wopiserver.clear_requests();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_oidc_provider_login_rotation_and_outage() {
    let mut idp = RealIdp::start(&[KeySpec::rsa("rsa-1"), KeySpec::ec("ec-1")], 600)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (stack, _gw) = start(StackOptions {
        oidc: Some((idp.issuer(), RESOURCE.to_owned())),
        ..Default::default()
    })
    .await;

    // RS256 and ES256 tokens from real logins open files; the REVA user is the IdP's subject.
    let rs1 = login(&idp, "RS256", "alice", "rsa-1").await;
    let (s, b) = open_status(&stack, &rs1).await;
    assert_eq!(s, 200, "{b}");
    let es1 = login(&idp, "ES256", "bob", "ec-1").await;
    let (s, b) = open_status(&stack, &es1).await;
    assert_eq!(s, 200, "{b}");
    let reva_users: Vec<(String, String, String)> = stack
        .reva
        .calls()
        .iter()
        .filter_map(|c| c.claims.as_ref())
        .map(|c| {
            let u = &c.user;
            (u.id.idp.clone(), u.id.opaque_id.clone(), u.username.clone())
        })
        .collect();
    for user in ["alice", "bob"] {
        let expected = (idp.issuer(), user.to_owned(), user.to_owned());
        assert!(reva_users.contains(&expected), "{reva_users:?}");
    }

    // A token altered after signing, or for another audience's resource, is refused.
    clear(&stack);
    let mut parts: Vec<String> = rs1.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let (s, b) = open_status(&stack, &parts.join(".")).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    assert_nothing_upstream(&stack);

    // Rotation: a new signing key is accepted on first sight without restarting the gateway;
    // tokens of the older, still published key keep working.
    idp.restart(&published("rsa-2", "rsa-1")).await.unwrap();
    let rs2 = login(&idp, "RS256", "alice", "rsa-2").await;
    let (s, b) = open_status(&stack, &rs2).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = open_status(&stack, &rs1).await;
    assert_eq!(s, 200, "{b}");

    // Retirement: rsa-1 leaves the JWKS as rsa-3 arrives. Seeing rsa-3 refreshes the key set,
    // and from then on rsa-1 tokens are refused although they were validated (and cached)
    // before.
    idp.restart(&published("rsa-3", "rsa-2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // jwks_min_refetch_seconds = 1
    let rs3 = login(&idp, "RS256", "alice", "rsa-3").await;
    let (s, b) = open_status(&stack, &rs3).await;
    assert_eq!(s, 200, "{b}");
    clear(&stack);
    let (s, b) = open_status(&stack, &rs1).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    assert_nothing_upstream(&stack);

    // Outage: with the IdP down, tokens of known keys still validate, even ones never seen
    // before; a token of a key the gateway has not fetched yet fails closed with 401.
    idp.restart(&published("rsa-4", "rsa-3")).await.unwrap();
    let es_fresh = login(&idp, "ES256", "carol", "ec-1").await;
    let rs4 = login(&idp, "RS256", "alice", "rsa-4").await;
    idp.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, b) = open_status(&stack, &es_fresh).await;
    assert_eq!(
        s, 200,
        "cached keys validate a new token during the outage: {b}"
    );
    let (s, b) = open_status(&stack, &rs3).await;
    assert_eq!(s, 200, "{b}");
    clear(&stack);
    let started = std::time::Instant::now();
    let (s, b) = open_status(&stack, &rs4).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "bounded by the IdP deadline"
    );
    assert_nothing_upstream(&stack);

    // Recovery: once the IdP is back (and the failure back-off has passed), the new key works.
    idp.restart(&published("rsa-4", "rsa-3")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, b) = open_status(&stack, &rs4).await;
    assert_eq!(s, 200, "{b}");
}
