//! Issue #26 point 3: OpenID Connect Back-Channel Logout 1.0. The real IdP (npm `oidc-provider`,
//! its back-channel logout feature on) ends one session and that session's next WOPI call
//! through the gateway answers 401 while the same user's other session goes on; forged,
//! expired, wrong-audience, nonce-carrying, event-less and replayed logout tokens are refused
//! with the OAuth error body.

use std::time::Duration;

use serde_json::{Value, json};
use wopigate::ids::encode_legacy;
use wopigate_testkit::real_idp::{KeySpec, RESOURCE, RealIdp};
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::control::{check_file_info, config_with, series_sum, started_with};
use crate::{WopiFile as File, client, legacy_open, start_gateway};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

async fn open_with(stack: &Stack, token: &str) -> File {
    let (s, body) = legacy_open(stack, token, &encode_legacy(STORAGE, "file-docx")).await;
    assert_eq!(s, 200, "{body}");
    crate::control::file_of(stack, &body)
}

fn sid_of(access_token: &str) -> String {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    v["sid"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_idp_ends_one_session_and_only_that_session_stops() {
    let keys = [KeySpec::rsa("rsa-1"), KeySpec::ec("ec-1")];
    let mut idp = RealIdp::start(&keys, 600)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stack = Stack::start(StackOptions {
        oidc: Some((idp.issuer(), RESOURCE.to_owned())),
        ..Default::default()
    })
    .await;
    idp.logout_uri = Some(format!("{}/oidc/backchannel-logout", stack.gateway_url()));
    idp.restart(&keys).await.unwrap_or_else(|e| panic!("{e}"));
    let client_id = idp.client("RS256").client_id.clone();
    let config = config_with(
        &stack,
        "logout.toml",
        &[("[oidc]", &format!("logout_clients = [{client_id:?}]"))],
    );
    let gw = start_gateway(&stack, &config).await;

    // Two sessions of alice (two devices): the IdP's access tokens name their sessions.
    let (t1, mut s1) = idp.login_session("RS256", "alice").await.unwrap();
    let (t2, _s2) = idp.login_session("RS256", "alice").await.unwrap();
    let (sid1, sid2) = (sid_of(&t1.access_token), sid_of(&t2.access_token));
    assert!(!sid1.is_empty() && sid1 != sid2, "{sid1} {sid2}");
    let f1 = open_with(&stack, &t1.access_token).await;
    let f2 = open_with(&stack, &t2.access_token).await;
    assert_eq!(check_file_info(&f1).await.0, 200);
    assert_eq!(check_file_info(&f2).await.0, 200);

    // alice signs out on the first device: the IdP calls the gateway before it answers.
    idp.end_session(&mut s1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", idp.log()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while check_file_info(&f1).await != (401, "revoked".into()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the logout did not arrive\nIdP:\n{}\ngateway:\n{}",
            idp.log(),
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        check_file_info(&f2).await.0,
        200,
        "the other session goes on"
    );
    let admin = stack.admin_url();
    let ok = "wopigate_backchannel_logouts_total{outcome=\"ok\"}";
    assert_eq!(series_sum(&admin, ok).await, 1.0);
    assert!(!idp.log().contains("backchannel.error"), "{}", idp.log());
    let (s, b) = legacy_open(
        &stack,
        &t1.access_token,
        &encode_legacy(STORAGE, "file-odt"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("revoked")), "{b}");
}

async fn post_logout(stack: &Stack, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/oidc/backchannel-logout", stack.gateway_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(cache.as_deref(), Some("no-store"));
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_tokens_that_are_not_genuine_fresh_and_ours_are_refused() {
    let (stack, _gw) = started_with(
        StackOptions::default(),
        &[("[oidc]", "logout_clients = [\"web-front-end\"]")],
    )
    .await;
    let now = wopigate::tokens::now();
    // A session whose OIDC token names its sid.
    let mut login = stack.idp.claims("alice");
    login["sid"] = json!("session-42");
    let f = open_with(&stack, &stack.idp.sign("rsa-1", &login)).await;
    assert_eq!(check_file_info(&f).await.0, 200);

    let logout = |patch: Value| {
        let mut c = json!({
            "iss": stack.idp.issuer(), "aud": "web-front-end", "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "sid": "session-42",
            "events": {EVENT: {}},
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        stack.idp.sign("rsa-1", &c)
    };
    let genuine = logout(json!({}));
    let mut forged = genuine.clone().into_bytes();
    let i = forged.len() - 5;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let refused = [
        ("forged", forged),
        ("expired", logout(json!({"exp": now - 120}))),
        ("stale", logout(json!({"iat": now - 3600}))),
        ("wrong audience", logout(json!({"aud": "someone-else"}))),
        (
            "the gateway's own audience",
            logout(json!({"aud": stack.idp.audience()})),
        ),
        (
            "wrong issuer",
            logout(json!({"iss": "https://elsewhere.example"})),
        ),
        ("a nonce", logout(json!({"nonce": "n-1"}))),
        ("no event", logout(json!({"events": null}))),
        ("no sub, no sid", logout(json!({"sid": null}))),
        ("no jti", logout(json!({"jti": null}))),
        ("an access token", stack.idp.token("alice")),
    ];
    for (what, token) in &refused {
        let (s, b) = post_logout(&stack, &[("logout_token", token)]).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {b}"
        );
    }
    let (s, _) = post_logout(&stack, &[]).await;
    assert_eq!(s, 400, "no logout_token");
    let (s, _) = post_logout(
        &stack,
        &[("logout_token", &genuine), ("logout_token", &genuine)],
    )
    .await;
    assert_eq!(s, 400, "two logout_tokens");
    assert_eq!(
        check_file_info(&f).await.0,
        200,
        "nothing refused ended anything"
    );

    // The genuine one ends the session; replayed, it is refused.
    let (s, b) = post_logout(&stack, &[("logout_token", &genuine)]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(check_file_info(&f).await, (401, "revoked".into()));
    let (s, b) = post_logout(&stack, &[("logout_token", &genuine)]).await;
    assert_eq!(
        (s, b["error_description"].as_str()),
        (400, Some("logout token replayed"))
    );
    let admin = stack.admin_url();
    let replayed = "wopigate_backchannel_logouts_total{outcome=\"replayed\"}";
    assert_eq!(series_sum(&admin, replayed).await, 1.0);
    let invalid = "wopigate_backchannel_logouts_total{outcome=\"invalid\"}";
    assert_eq!(
        series_sum(&admin, invalid).await,
        refused.len() as f64 + 2.0
    );
    // Only sub: the user's every session.
    let g = open_with(&stack, &stack.idp.token("alice")).await;
    let (s, _) = post_logout(
        &stack,
        &[(
            "logout_token",
            &logout(json!({"sid": null, "sub": "alice-sub"})),
        )],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(check_file_info(&g).await.0, 401);
}
