//! The WOPI edge on the proxied path: proof keys with the validator's keys and a rotation, and
//! the normalisations of the wopiserver's deviations, each with the deviation reproduced.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wopigate::wopi::proof::ticks_of;
use wopigate_testkit::fake_office::MICROSOFT_DISCOVERY;
use wopigate_testkit::proof_signer::{ProofSigner, validator_signers};
use wopigate_testkit::stack::{Stack, StackOptions};

use crate::{client, enc, start, wopi_get};

/// Opens `file_id` with `app`; returns (WOPI file URL without query, access token).
async fn open_with(stack: &Stack, file_id: &str, app: &str) -> (String, String) {
    let (f, _) = crate::app_open(stack, file_id, app, None).await;
    (f.url, f.token)
}

/// Sends a signed CheckFileInfo; returns the status.
async fn signed_get(url: &str, token: &str, ticks: i64, proof: &str, proof_old: &str) -> u16 {
    let full = format!("{url}?access_token={}", enc(token));
    client()
        .get(&full)
        .header("X-WOPI-TimeStamp", ticks.to_string())
        .header("X-WOPI-Proof", proof)
        .header("X-WOPI-ProofOld", proof_old)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn reached_wopiserver(stack: &Stack) -> usize {
    stack
        .wopiserver
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/wopi/files/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_keys_are_enforced_and_rotations_are_picked_up() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let (file, token) = open_with(&stack, "storage-1!file-docx", "Microsoft Office Online").await;
    let signed_url = format!("{file}?access_token={}", enc(&token));
    let (current, old) = validator_signers();
    let now = ticks_of(SystemTime::now());
    let sign = |s: &ProofSigner, url: &str, t: i64| s.sign(&token, url, t);

    // Correct (current + old), and a client still on the old key.
    assert_eq!(
        signed_get(
            &file,
            &token,
            now,
            &sign(&current, &signed_url, now),
            &sign(&old, &signed_url, now)
        )
        .await,
        200
    );
    assert_eq!(
        signed_get(&file, &token, now, &sign(&old, &signed_url, now), "").await,
        200
    );
    let passed = reached_wopiserver(&stack);
    assert_eq!(passed, 2);

    // Rejected and never forwarded: a third key, a 21-minute-old timestamp, a tampered URL,
    // a tampered token, a missing proof.
    let third = ProofSigner::generate();
    let stale = ticks_of(SystemTime::now() - Duration::from_secs(21 * 60));
    let tampered_url = signed_url.replace("/wopi/files/", "/wopi/files/x");
    let other_token = sign(&current, &signed_url.replace(&enc(&token), "other"), now);
    let cases = [
        ("third key", now, sign(&third, &signed_url, now)),
        ("stale timestamp", stale, sign(&current, &signed_url, stale)),
        ("tampered URL", now, sign(&current, &tampered_url, now)),
        ("signature of another token", now, other_token),
    ];
    // (The old-key success above already refreshed discovery in the background; let its
    // rate-limit window pass.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fetches_before = stack.offices[1].1.fetches();
    for (name, ts, proof) in cases {
        assert_eq!(
            signed_get(&file, &token, ts, &proof, &proof).await,
            500,
            "{name}"
        );
    }
    let r = client().get(&signed_url).send().await.unwrap();
    assert_eq!(r.status(), 500, "missing proof");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "proof_invalid"
    );
    assert_eq!(
        reached_wopiserver(&stack),
        passed,
        "no failed request reached the wopiserver"
    );
    // Mismatches refetched discovery, rate-limited (1 s here): at most once in this burst.
    assert_eq!(stack.offices[1].1.fetches() - fetches_before, 1);

    // The office app rotates: new current key, the validator's current becomes old.
    let rotated = ProofSigner::generate();
    let (m, e) = rotated.modulus_exponent();
    let (cm, ce) = {
        let xml = wopigate::discovery::xml::parse(MICROSOFT_DISCOVERY).unwrap();
        let pk = xml.proof_key.unwrap();
        (pk.modulus, pk.exponent)
    };
    let start = MICROSOFT_DISCOVERY.find("<proof-key").unwrap();
    let end = start + MICROSOFT_DISCOVERY[start..].find("/>").unwrap() + 2;
    let xml = format!(
        "{}<proof-key modulus=\"{m}\" exponent=\"{e}\" oldmodulus=\"{cm}\" oldexponent=\"{ce}\"/>{}",
        &MICROSOFT_DISCOVERY[..start],
        &MICROSOFT_DISCOVERY[end..]
    );
    stack.offices[1].1.set_xml(&xml);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = ticks_of(SystemTime::now());
    let fetches_before = stack.offices[1].1.fetches();
    assert_eq!(
        signed_get(
            &file,
            &token,
            now,
            &sign(&rotated, &signed_url, now),
            &sign(&current, &signed_url, now)
        )
        .await,
        200
    );
    // ProofOld verified with the cached current key (the client rotated first): accepted at
    // once, and the refetch runs in the background, so wait for it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stack.offices[1].1.fetches() == fetches_before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stack.offices[1].1.fetches() - fetches_before,
        1,
        "one refetch, no restart"
    );
    // And from now on the new key verifies from the cache.
    let now = ticks_of(SystemTime::now());
    assert_eq!(
        signed_get(&file, &token, now, &sign(&rotated, &signed_url, now), "").await,
        200
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A wopiserver-signed token for `file-docx` whose embedded REVA token expired a minute ago.
fn token_with_expired_reva_token(stack: &Stack) -> String {
    let reva = stack.reva_token_for_alice(Duration::from_secs(60), unix_now() - 120);
    crate::wopiserver_token_for_report(stack, reva, "Collabora")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deviations_are_normalised_and_can_be_switched_off() {
    // Switched off: the wopiserver's deviations reach the client as they are.
    let (raw, _gw) = start(StackOptions {
        extra_config: "[wopi]\nnormalize_get_lock = false\nreject_expired_tokens = false\n".into(),
        ..Default::default()
    })
    .await;
    let file = format!("{}/wopi/files/storage-1!ZmlsZS1kb2N4", raw.gateway_url());
    let expired = token_with_expired_reva_token(&raw);
    let r = wopi_get(&file, &expired).await;
    assert_eq!(
        r.status(),
        500,
        "the wopiserver's answer to an expired REVA token"
    );
    let (_, token) = open_with(&raw, "storage-1!file-docx", "Collabora").await;
    let r = client()
        .post(&file)
        .query(&[("access_token", &token)])
        .header("X-WOPI-Override", "GET_LOCK")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "the wopiserver's GetLock on an unlocked file"
    );
    drop(_gw);

    // Default: 401 from the gateway (nothing forwarded) and 200 + empty X-WOPI-Lock.
    let (stack, _gw) = start(StackOptions::default()).await;
    let file = format!("{}/wopi/files/storage-1!ZmlsZS1kb2N4", stack.gateway_url());
    let expired = token_with_expired_reva_token(&stack);
    stack.wopiserver.clear_requests();
    let r = wopi_get(&file, &expired).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_token"
    );
    assert!(stack.wopiserver.requests().is_empty());
    let (_, token) = open_with(&stack, "storage-1!file-docx", "Collabora").await;
    let r = client()
        .post(&file)
        .query(&[("access_token", &token)])
        .header("X-WOPI-Override", "GET_LOCK")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-wopi-lock").map(|v| v.as_bytes()),
        Some(&b""[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_only_and_off_let_unsigned_requests_through() {
    for (mode, logged) in [("log-only", true), ("off", false)] {
        let stack = Stack::start(StackOptions::default()).await;
        let config = stack.config_toml().replace(
            "name = \"Microsoft Office Online\"\n",
            &format!("name = \"Microsoft Office Online\"\nproof_keys = \"{mode}\"\n"),
        );
        let path = stack.dir().join("mode.toml");
        std::fs::write(&path, config).unwrap();
        let gw = wopigate_testkit::gateway::GatewayProcess::start(
            &crate::bin(),
            &path,
            stack.listen_port,
        )
        .await
        .unwrap();
        let (file, token) =
            open_with(&stack, "storage-1!file-docx", "Microsoft Office Online").await;
        let r = wopi_get(&file, &token).await;
        assert_eq!(r.status(), 200, "{mode}");
        assert_eq!(
            gw.logs().contains("WOPI proof failed (log-only)"),
            logged,
            "{mode}"
        );
    }
}
