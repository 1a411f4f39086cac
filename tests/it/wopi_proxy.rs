//! WOPI traffic through the gateway with a token from the open flow.

use futures_util::StreamExt;
use wopigate_testkit::gateway::PeakRss;
use wopigate_testkit::stack::{BIG_FILE_BYTES, Stack, StackOptions};
use wopigate_testkit::tree::Content;

use crate::{client, legacy_open, start, wopi_get, wopi_src_path};

/// Opens `file_id` and returns (WOPI file URL without query, access token).
async fn open_file(stack: &Stack, file_id: &str) -> (String, String) {
    let token = stack.idp.token("alice");
    let (status, body) = legacy_open(stack, &token, file_id).await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    (
        format!("{}{path}", stack.gateway_url()),
        body["accesstoken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_file_info_put_file_and_locks_pass_through() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let (file, token) = open_file(&stack, "storage-1!file-docx").await;
    let c = client();
    let q = [("access_token", token.as_str())];

    let r = c
        .get(&file)
        .query(&q)
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Request-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["BaseFileName"], "report.docx");
    assert_eq!(info["UserCanWrite"], true);
    let seen = stack
        .wopiserver
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/wopi/files/"))
        .unwrap();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "spoofed value replaced"
    );
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-trace-id"), Some("req-42"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert!(seen.header("x-forwarded-host").is_some());
    assert!(
        seen.query.contains("access_token="),
        "the token is forwarded unchanged"
    );

    let op = |name: &'static str, lock: &'static str| {
        c.post(&file)
            .query(&q)
            .header("X-WOPI-Override", name)
            .header("X-WOPI-Lock", lock)
            .send()
    };
    let r = op("LOCK", "lock-A").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-wopi-itemversion"], "v1");

    let r = c
        .post(format!("{file}/contents"))
        .query(&q)
        .header("X-WOPI-Override", "PUT")
        .header("X-WOPI-Lock", "lock-A")
        .body("new contents")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-wopi-itemversion"], "v2");
    match stack.tree.get_by("storage-1", "file-docx").unwrap().content {
        Content::Bytes(b) => assert_eq!(b, b"new contents"),
        other => panic!("{other:?}"),
    }

    // Conflict: 409 with the current lock, untouched.
    let r = op("LOCK", "lock-B").await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["x-wopi-lock"], "lock-A");
    assert!(r.headers().contains_key("x-wopi-lockfailurereason"));
    let r = c
        .post(format!("{file}/contents"))
        .query(&q)
        .header("X-WOPI-Override", "PUT")
        .header("X-WOPI-Lock", "lock-B")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["x-wopi-lock"], "lock-A");

    let r = op("GET_LOCK", "").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-wopi-lock"], "lock-A");
    let r = op("UNLOCK", "lock-A").await.unwrap();
    assert_eq!(r.status(), 200);
    // Unlocked: the wopiserver's 404 is normalised to 200; its *empty* X-WOPI-Lock survives.
    let r = op("GET_LOCK", "").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-wopi-lock").map(|v| v.as_bytes()),
        Some(&b""[..])
    );
    let r = op("UNLOCK", "lock-A").await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.headers().get("x-wopi-lock").map(|v| v.as_bytes()),
        Some(&b""[..])
    );

    // Not a WOPI token at all: refused here. A well-formed token with a bad signature: the
    // wopiserver's own 401, passed through.
    for forged in [
        "forged".to_owned(),
        crate::unsigned_wopi_token(4_000_000_000),
    ] {
        let r = c
            .get(&file)
            .query(&[("access_token", forged.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let last = stack.wopiserver.requests().pop().unwrap();
    assert!(
        last.query.contains("access_token="),
        "the well-formed one reached the wopiserver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_file_of_256_mib_is_streamed_with_bounded_memory() {
    let (stack, gw) = start(StackOptions::default()).await;
    let (file, token) = open_file(&stack, "storage-1!file-big").await;
    let peak = PeakRss::start(gw.pid());
    let resp = wopi_get(&format!("{file}/contents"), &token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        BIG_FILE_BYTES.to_string().as_str()
    );
    let mut stream = resp.bytes_stream();
    let mut received: u64 = 0;
    let mut pattern_ok = true;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        // spot-check the generator's pattern at chunk starts
        pattern_ok &= chunk.first().is_none_or(|&b| b == (received % 251) as u8);
        received += chunk.len() as u64;
    }
    let growth = peak.growth();
    assert_eq!(received, BIG_FILE_BYTES);
    assert!(pattern_ok, "body bytes arrived out of order");
    eprintln!(
        "gateway RSS growth during 256 MiB GetFile: {} KiB",
        growth / 1024
    );
    assert!(growth < 32 * 1024 * 1024, "RSS grew by {growth} bytes");
}
