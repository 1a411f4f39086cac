//! The JWT attack catalogue of security.md §4 as a table: each row a forged or malformed OIDC
//! bearer token sent to the open API, with its expected status; no row may reach REVA or the
//! wopiserver, and no header URL (`jku`, `x5u`) may be fetched. (J9–J11, key lifecycle, are in
//! `oidc_keys.rs`; J24, several tokens in one request, in `errors.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use wopigate::ids::encode_legacy;
use wopigate_testkit::stack::{STORAGE, StackOptions};
use wopigate_testkit::test_idp::{SigningKey, now};
use wopigate_testkit::{localhost, serve_http};

use crate::{client, enc, start};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw header and payload text, signed over exactly those bytes.
fn forge(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn with(claims: &Value, f: impl FnOnce(&mut Value)) -> String {
    let mut c = claims.clone();
    f(&mut c);
    c.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attack_catalogue() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let idp = &stack.idp;
    let rsa = idp.key("rsa-1").unwrap();
    let ec = idp.key("ec-1").unwrap();
    let rogue = SigningKey::rsa("rogue");
    let claims = idp.claims("alice");
    let body = claims.to_string();
    let rs_header = r#"{"alg":"RS256","typ":"JWT","kid":"rsa-1"}"#;
    let rs = |payload: &str| forge(rs_header, payload, &rsa.encoding, Algorithm::RS256);
    let rs_h = |header: &str| forge(header, &body, &rsa.encoding, Algorithm::RS256);
    let good = rs(&body);

    // A server that must never be asked for anything (jku / x5u targets).
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let probe = serve_http(
        axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"keys": []})) }
        }),
        localhost(0),
    )
    .await
    .unwrap();
    let probe_url = probe.url();

    let pem = rsa.public_pem.clone();
    let der = STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let jwk = idp.jwks()["keys"][0].to_string();
    let hs = |secret: &[u8], alg: Algorithm, name: &str| {
        forge(
            &format!(r#"{{"alg":"{name}","typ":"JWT","kid":"rsa-1"}}"#),
            &body,
            &EncodingKey::from_secret(secret),
            alg,
        )
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"rsa-1"}}"#).as_bytes()),
            b64(body.as_bytes())
        )
    };
    // The attacker's own public key, embedded in the header.
    let rogue_jwk = rogue.jwk.clone();
    let by_rogue = |header: String| forge(&header, &body, &rogue.encoding, Algorithm::RS256);
    let es = |sig: Vec<u8>| {
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","typ":"JWT","kid":"ec-1"}"#),
            b64(body.as_bytes()),
            b64(&sig)
        )
    };
    let mut flipped = good.clone().into_bytes();
    let n = flipped.len();
    flipped[n - 5] = if flipped[n - 5] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    let (h, _, s) = {
        let mut it = good.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let as_bob = format!(
        "{h}.{}.{s}",
        b64(with(&claims, |c| c["sub"] = json!("bob-sub")).as_bytes())
    );
    // Non-canonical base64url: a set trailing bit in the signature's last character.
    let trailing_bit = {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = s.chars().last().unwrap();
        let i = alphabet.find(last).unwrap();
        format!(
            "{h}.{}.{}{}",
            good.split('.').nth(1).unwrap(),
            &s[..s.len() - 1],
            &alphabet[i + 1..i + 2]
        )
    };
    let nested = {
        let mut v = String::new();
        for _ in 0..2000 {
            v.push('[');
        }
        for _ in 0..2000 {
            v.push(']');
        }
        body.replacen('{', &format!("{{\"deep\":{v},"), 1)
    };
    let iss = claims["iss"].as_str().unwrap().to_owned();

    let rows: Vec<(&str, String)> = vec![
        ("J1 alg none", unsigned("none")),
        ("J1 alg None", unsigned("None")),
        ("J1 alg NONE", unsigned("NONE")),
        ("J1 alg nOnE", unsigned("nOnE")),
        (
            "J1 RS256 with an empty signature",
            format!("{h}.{}.", good.split('.').nth(1).unwrap()),
        ),
        (
            "J2 HS256 keyed with the PEM public key",
            hs(pem.as_bytes(), Algorithm::HS256, "HS256"),
        ),
        (
            "J2 HS256 keyed with the DER public key",
            hs(&der, Algorithm::HS256, "HS256"),
        ),
        (
            "J2 HS256 keyed with the JWK",
            hs(jwk.as_bytes(), Algorithm::HS256, "HS256"),
        ),
        (
            "J3 HS512 (not allowed)",
            hs(b"any secret", Algorithm::HS512, "HS512"),
        ),
        (
            "J3 RS512 by the real key (not allowed)",
            forge(
                r#"{"alg":"RS512","kid":"rsa-1"}"#,
                &body,
                &rsa.encoding,
                Algorithm::RS512,
            ),
        ),
        (
            "J4 ES256 header on the RSA kid",
            forge(
                r#"{"alg":"ES256","kid":"rsa-1"}"#,
                &body,
                &ec.encoding,
                Algorithm::ES256,
            ),
        ),
        (
            "J4 RS256 header on the EC kid",
            forge(
                r#"{"alg":"RS256","kid":"ec-1"}"#,
                &body,
                &rsa.encoding,
                Algorithm::RS256,
            ),
        ),
        (
            "J5 embedded jwk, attacker kid",
            by_rogue(format!(
                r#"{{"alg":"RS256","kid":"rogue","jwk":{rogue_jwk}}}"#
            )),
        ),
        (
            "J5 embedded jwk, real kid",
            by_rogue(format!(
                r#"{{"alg":"RS256","kid":"rsa-1","jwk":{rogue_jwk}}}"#
            )),
        ),
        (
            "J6 jku to an attacker JWKS",
            by_rogue(format!(
                r#"{{"alg":"RS256","kid":"rogue","jku":"{probe_url}/jwks"}}"#
            )),
        ),
        (
            "J6 x5u to an attacker certificate",
            by_rogue(format!(
                r#"{{"alg":"RS256","kid":"rogue","x5u":"{probe_url}/cert"}}"#
            )),
        ),
        (
            "J7 x5c of the attacker",
            by_rogue(r#"{"alg":"RS256","kid":"rsa-1","x5c":["MIIB"]}"#.to_owned()),
        ),
        (
            "J8 kid path traversal",
            by_rogue(r#"{"alg":"RS256","kid":"../../../etc/passwd"}"#.to_owned()),
        ),
        (
            "J8 kid SQL",
            by_rogue(r#"{"alg":"RS256","kid":"x' OR '1'='1"}"#.to_owned()),
        ),
        (
            "J8 kid NUL",
            by_rogue(r#"{"alg":"RS256","kid":"rsa-1\u0000"}"#.to_owned()),
        ),
        (
            "J8 kid 10 kB",
            by_rogue(format!(
                r#"{{"alg":"RS256","kid":"{}"}}"#,
                "k".repeat(10_000)
            )),
        ),
        (
            "J12 crit",
            rs_h(r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#),
        ),
        ("J13 ECDSA r = s = 0", es(vec![0u8; 64])),
        ("J13 ECDSA r, s ≥ n", es(vec![0xFFu8; 64])),
        (
            "J14 aud missing",
            rs(&with(&claims, |c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
        ),
        (
            "J14 aud wrong",
            rs(&with(&claims, |c| c["aud"] = json!("another-client"))),
        ),
        (
            "J14 aud array without us",
            rs(&with(&claims, |c| c["aud"] = json!(["a", "b"]))),
        ),
        (
            "J14 aud empty array",
            rs(&with(&claims, |c| c["aud"] = json!([]))),
        ),
        (
            "J14 aud empty string",
            rs(&with(&claims, |c| c["aud"] = json!(""))),
        ),
        (
            "J15 iss with a trailing slash",
            rs(&with(&claims, |c| c["iss"] = json!(format!("{iss}/")))),
        ),
        (
            "J15 iss upper-cased",
            rs(&with(&claims, |c| c["iss"] = json!(iss.to_uppercase()))),
        ),
        (
            "J16 exp past the leeway",
            rs(&with(&claims, |c| c["exp"] = json!(now() - 3600))),
        ),
        (
            "J17 nbf beyond the leeway",
            rs(&with(&claims, |c| c["nbf"] = json!(now() + 3600))),
        ),
        (
            "J17 iat far in the future",
            rs(&with(&claims, |c| c["iat"] = json!(now() + 86_400))),
        ),
        (
            "J18 exp as a string",
            rs(&with(&claims, |c| {
                c["exp"] = json!((now() + 600).to_string())
            })),
        ),
        (
            "J18 exp as a float",
            rs(&with(&claims, |c| {
                c["exp"] = json!((now() + 600) as f64 + 0.5)
            })),
        ),
        (
            "J18 exp negative",
            rs(&with(&claims, |c| c["exp"] = json!(-1))),
        ),
        (
            "J18 exp above 2^53",
            rs(&with(&claims, |c| c["exp"] = json!(1u64 << 60))),
        ),
        (
            "J18 exp missing",
            rs(&with(&claims, |c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        ("J19 thousands of dots", ".".repeat(5000)),
        ("J19 deeply nested payload", rs(&nested)),
        ("J20 JWE (five segments)", format!("{good}.e30.e30")),
        (
            "J20 zip",
            rs_h(r#"{"alg":"RS256","kid":"rsa-1","zip":"DEF"}"#),
        ),
        (
            "J21 nested JWT (cty)",
            rs_h(r#"{"alg":"RS256","kid":"rsa-1","cty":"JWT"}"#),
        ),
        ("J21 b64 false", {
            let header = r#"{"alg":"RS256","kid":"rsa-1","b64":false}"#;
            let msg = format!("{}.{body}", b64(header.as_bytes()));
            let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &rsa.encoding, Algorithm::RS256)
                .unwrap();
            format!("{}..{sig}", b64(header.as_bytes()))
        }),
        (
            "J22 duplicate alg in the header",
            rs_h(r#"{"alg":"RS256","alg":"none","kid":"rsa-1"}"#),
        ),
        (
            "J22 two sub claims",
            rs(&body.replacen('{', "{\"sub\":\"bob-sub\",", 1)),
        ),
        (
            "J22 two exp claims",
            rs(&body.replacen('{', &format!("{{\"exp\":{},", now() + 999_999), 1)),
        ),
        (
            "J23 padded segment",
            format!("{h}=.{}.{s}", good.split('.').nth(1).unwrap()),
        ),
        (
            "J23 standard-alphabet characters",
            good.replace('-', "+").replace('_', "/"),
        ),
        (
            "J23 whitespace",
            format!("{h}. {}.{s}", good.split('.').nth(1).unwrap()),
        ),
        ("J23 trailing bits set", trailing_bit),
        (
            "J25 another client's token",
            rs(&with(&claims, |c| c["aud"] = json!("other-app"))),
        ),
        ("J26 one signature byte flipped", flipped),
        ("J26 payload changed, signature kept", as_bob),
    ];
    let file = encode_legacy(STORAGE, "file-docx");
    let url = format!(
        "{}/api/v0/wopi/open?fileId={}",
        stack.gateway_url(),
        enc(&file)
    );
    stack.reva.clear_calls();
    stack.wopiserver.clear_requests();
    let mut failures = Vec::new();
    for (name, token) in &rows {
        wopigate_testkit::hygiene::register("forged token", token);
        let r = client().get(&url).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 401 || body["code"] != "invalid_token" {
            failures.push(format!("{name}: {status} {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "rows not refused with 401:\n{}",
        failures.join("\n")
    );
    assert!(stack.reva.calls().is_empty(), "a forged token reached REVA");
    assert!(
        stack.wopiserver.requests().is_empty(),
        "a forged token reached the wopiserver"
    );
    assert_eq!(
        fetched.load(Ordering::SeqCst),
        0,
        "a header URL was fetched"
    );
    eprintln!(
        "JWT attack catalogue: {} rows, all 401 with nothing upstream",
        rows.len()
    );

    // Controls: the genuine token, and one expired within the leeway (J16), are accepted.
    for (name, token) in [
        ("genuine", good.clone()),
        (
            "J16 exp within the leeway",
            rs(&with(&claims, |c| c["exp"] = json!(now() - 20))),
        ),
    ] {
        let r = client().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
}
