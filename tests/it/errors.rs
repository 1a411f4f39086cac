//! Bad input and broken dependencies: each case gets its precise status and JSON body, quickly,
//! and auth failures never reach REVA or the wopiserver.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use wopigate::ids::encode_legacy;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::test_idp::{SigningKey, now};

use crate::{bin, client, enc, start};

struct Case {
    name: &'static str,
    token: Option<String>,
    file_id: String,
    status: u16,
    code: &'static str,
}

async fn check(stack: &Stack, c: &Case) {
    let started = Instant::now();
    let mut req = client().get(format!(
        "{}/api/v0/wopi/open?fileId={}",
        stack.gateway_url(),
        enc(&c.file_id)
    ));
    if let Some(t) = &c.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = resp
        .json()
        .await
        .unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", c.name));
    assert_eq!(status, c.status, "{}: {body}", c.name);
    assert_eq!(body["code"], c.code, "{}", c.name);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        c.name
    );
    assert_eq!(ctype.as_deref(), Some("application/json"), "{}", c.name);
    if status == 401 {
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#),
            "{}",
            c.name
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{} took {:?}",
        c.name,
        started.elapsed()
    );
}

fn unsigned(header: serde_json::Value, claims: &serde_json::Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{p}.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let idp = &stack.idp;
    let good_file = encode_legacy(STORAGE, "file-docx");
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = idp.claims("alice");
        f(&mut c);
        idp.sign("rsa-1", &c)
    };
    let rsa_pem = idp.key("rsa-1").unwrap().public_pem.clone();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &hs_header,
        &idp.claims("alice"),
        &EncodingKey::from_secret(rsa_pem.as_bytes()),
    )
    .unwrap();
    let rogue = SigningKey::rsa("rogue-kid");
    let mut rogue_header = Header::new(Algorithm::RS256);
    rogue_header.kid = Some("rogue-kid".into());
    let unknown_kid =
        jsonwebtoken::encode(&rogue_header, &idp.claims("alice"), &rogue.encoding).unwrap();
    let mut no_kid_header = Header::new(Algorithm::RS256);
    no_kid_header.kid = None;
    let no_kid = jsonwebtoken::encode(
        &no_kid_header,
        &idp.claims("alice"),
        &idp.key("rsa-1").unwrap().encoding,
    )
    .unwrap();
    let good = idp.token("alice");

    let auth = |name, token: Option<String>| Case {
        name,
        token,
        file_id: good_file.clone(),
        status: 401,
        code: "invalid_token",
    };
    let cases = vec![
        auth("no token", None),
        auth(
            "expired",
            Some(with(&|c| {
                c["exp"] = json!(now() - 3600);
                c["iat"] = json!(now() - 7200);
                c["nbf"] = json!(now() - 7200);
            })),
        ),
        auth(
            "nbf in the future",
            Some(with(&|c| c["nbf"] = json!(now() + 3600))),
        ),
        auth(
            "wrong iss",
            Some(with(&|c| {
                c["iss"] = json!(format!("{}/", c["iss"].as_str().unwrap()))
            })),
        ),
        auth(
            "wrong aud",
            Some(with(&|c| c["aud"] = json!("another-client"))),
        ),
        auth(
            "aud array without ours",
            Some(with(&|c| c["aud"] = json!(["a", "b"]))),
        ),
        auth(
            "missing exp",
            Some(with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        auth(
            "alg none",
            Some(unsigned(
                json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}),
                &idp.claims("alice"),
            )),
        ),
        auth("HS256 signed with the RSA public key", Some(confused)),
        auth("unknown kid", Some(unknown_kid)),
        auth("no kid", Some(no_kid)),
        auth("garbage", Some("not.a.token".into())),
        auth("one segment", Some("abc".into())),
        // 1 MB: larger than the gateway's token limit (16 KiB) but inside the HTTP header limit.
        Case {
            status: 431,
            code: "headers_too_large",
            ..auth("1 MB token", Some("a".repeat(1_000_000)))
        },
        Case {
            name: "malformed fileId",
            token: Some(good.clone()),
            file_id: "%%%not-base64".into(),
            status: 400,
            code: "bad_request",
        },
        Case {
            name: "a folder",
            token: Some(good.clone()),
            file_id: encode_legacy(STORAGE, "folder-docs"),
            status: 400,
            code: "bad_request",
        },
        Case {
            name: "unsupported extension",
            token: Some(good.clone()),
            file_id: encode_legacy(STORAGE, "file-xyz"),
            status: 415,
            code: "unsupported_extension",
        },
        // A file the caller may not open reads exactly like one that does not exist: the
        // answer must not tell that it is there (was 403 "REVA denied access").
        Case {
            name: "no permission",
            token: Some(good.clone()),
            file_id: encode_legacy(STORAGE, "file-none"),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "another user's file",
            token: Some(good.clone()),
            file_id: encode_legacy(STORAGE, "file-bob"),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "unknown file",
            token: Some(good.clone()),
            file_id: encode_legacy(STORAGE, "no-such-file"),
            status: 404,
            code: "not_found",
        },
    ];
    for c in &cases {
        stack.reva.clear_calls();
        stack.wopiserver.clear_requests();
        check(&stack, c).await;
        if c.status == 401 {
            assert!(stack.reva.calls().is_empty(), "{}: reached REVA", c.name);
            assert!(
                stack.wopiserver.requests().is_empty(),
                "{}: reached the wopiserver",
                c.name
            );
        }
    }

    // Two differing tokens in one request are refused outright.
    stack.reva.clear_calls();
    let r = client()
        .get(format!(
            "{}/api/v0/wopi/open?fileId={}",
            stack.gateway_url(),
            enc(&good_file)
        ))
        .header("Authorization", format!("Bearer {good}"))
        .header("Authorization", format!("Bearer {}", idp.token("bob")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A header block beyond 1 MiB never reaches routing: the HTTP parser refuses it with 400.
    let r = client()
        .get(format!(
            "{}/api/v0/wopi/open?fileId={}",
            stack.gateway_url(),
            enc(&good_file)
        ))
        .header(
            "Authorization",
            format!("Bearer {}", "a".repeat(1024 * 1024)),
        )
        .send()
        .await;
    assert!(
        r.map(|r| r.status().as_u16() == 400).unwrap_or(true),
        "oversized header accepted"
    );
    assert!(stack.reva.calls().is_empty());
    // And the good token still works after all that.
    let (status, body) = crate::legacy_open(&stack, &good, &good_file).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_api_is_404_on_the_public_listener() {
    let (stack, _gw) = start(StackOptions::default()).await;
    stack.wopiserver.clear_requests();
    for path in [
        "/wopi/iop/openinapp?fileid=x",
        "/wopi/iop/open?filename=x",
        "/wopi/iop/list",
        "/WOPI/IOP/openinapp",
        "/wopi/cbox/endpoints",
        "/nowhere",
    ] {
        let r = client()
            .get(format!("{}{path}", stack.gateway_url()))
            .header("Authorization", format!("Bearer {}", stack.iop_secret))
            .header("TokenHeader", "x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
    // Sent raw: an HTTP client library would normalise these before sending.
    for path in [
        "/wopi/files/../iop/list",
        "/wopi/files/%2e%2e/iop/list",
        "/wopi/files/a%2fb",
        "/wopi/iop%2fopeninapp",
        "//wopi//iop/openinapp",
    ] {
        let head = raw_request(
            stack.gateway_port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
    }
    assert!(
        stack.wopiserver.requests().is_empty(),
        "nothing reached the wopiserver"
    );
}

/// Sends raw bytes and returns the response as text.
async fn raw_request(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn status_of_open(stack: &Stack) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let (s, b) = crate::legacy_open(
        stack,
        &stack.idp.token("alice"),
        &encode_legacy(STORAGE, "file-docx"),
    )
    .await;
    (s, b, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_down() {
    // REVA down.
    let (mut stack, _gw) = start(StackOptions::default()).await;
    stack.reva_server.stop().await;
    let (s, b, took) = status_of_open(&stack).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    assert!(took < Duration::from_secs(4));
    drop(_gw);

    // wopiserver down: the open API and proxied WOPI traffic both say 503.
    let (mut stack, _gw) = start(StackOptions::default()).await;
    stack.wopi_server.stop().await;
    let (s, b, _) = status_of_open(&stack).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    let r = client()
        .get(format!(
            "{}/wopi/files/storage-1!eA==?access_token={}",
            stack.gateway_url(),
            crate::unsigned_wopi_token(4_000_000_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "unavailable"
    );
    drop(_gw);

    // REVA slower than the deadline (2 s): 504, within the deadline.
    let (stack, _gw) = start(StackOptions::default()).await;
    stack.reva.set_delay(Duration::from_secs(10));
    let (s, b, took) = status_of_open(&stack).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (504, Some("upstream_timeout")),
        "{b}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_down_warm_cache_still_opens_cold_cache_is_503() {
    // Warm: loaded at start, then every office app goes away.
    let (mut stack, _gw) = start(StackOptions::default()).await;
    for s in &mut stack.office_servers {
        s.stop().await;
    }
    let (s, b, _) = status_of_open(&stack).await;
    assert_eq!(s, 200, "{b}");

    // Cold: the gateway starts while discovery is unreachable.
    let mut stack = Stack::start(StackOptions::default()).await;
    for s in &mut stack.office_servers {
        s.stop().await;
    }
    let gw = GatewayProcess::start(&bin(), &stack.write_config(), stack.listen_port)
        .await
        .unwrap();
    let (s, b, took) = status_of_open(&stack).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (503, Some("unavailable")),
        "{b}\n{}",
        gw.logs()
    );
    assert!(took < Duration::from_secs(5));
}
