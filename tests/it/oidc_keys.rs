//! IdP key lifecycle against the running gateway: a new `kid` is fetched without restart, bursts
//! of unknown kids cause one fetch, and the last good key set outlives the IdP.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use wopigate::ids::encode_legacy;
use wopigate_testkit::stack::{STORAGE, StackOptions};
use wopigate_testkit::test_idp::SigningKey;

use crate::{legacy_open, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_refetch_limits_and_idp_outage() {
    let (mut stack, _gw) = start(StackOptions::default()).await;
    let file = encode_legacy(STORAGE, "file-docx");
    let fetches_at_start = stack.idp.jwks_fetches();
    assert!(fetches_at_start >= 1, "keys loaded at start");

    // A key published after start is picked up on first sight of its kid.
    stack.idp.add_key(SigningKey::rsa("rsa-2"));
    let (s, b) = legacy_open(
        &stack,
        &stack.idp.sign("rsa-2", &stack.idp.claims("alice")),
        &file,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let after_rotation = stack.idp.jwks_fetches();
    assert_eq!(after_rotation, fetches_at_start + 1);

    // A burst of unknown kids: one refetch at most per window (1 s here), all 401.
    let rogue = SigningKey::rsa("rogue");
    let mut tasks = Vec::new();
    for i in 0..40 {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(format!("unknown-{i}"));
        let token = jsonwebtoken::encode(&h, &stack.idp.claims("alice"), &rogue.encoding).unwrap();
        let url = format!(
            "{}/api/v0/wopi/open?fileId={}",
            stack.gateway_url(),
            crate::enc(&file)
        );
        tasks.push(tokio::spawn(async move {
            crate::client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert!(
        stack.idp.jwks_fetches() - after_rotation <= 2,
        "refetches: {}",
        stack.idp.jwks_fetches() - after_rotation
    );

    // IdP down: keys already known keep validating (a fresh, uncached token); unknown kids fail
    // closed with 401, never 5xx.
    stack.idp_server.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut claims = stack.idp.claims("alice");
    claims["jti"] = serde_json::json!("fresh");
    let (s, b) = legacy_open(&stack, &stack.idp.sign("rsa-1", &claims), &file).await;
    assert_eq!(s, 200, "{b}");
    stack.idp.add_key(SigningKey::rsa("rsa-3"));
    let (s, b) = legacy_open(
        &stack,
        &stack.idp.sign("rsa-3", &stack.idp.claims("alice")),
        &file,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
}
