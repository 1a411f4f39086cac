//! Slow and oversized clients over raw TCP (security.md P5, P6) with small configured limits:
//! slowloris heads on fresh and kept-alive connections, idle connections, bodies that pause or
//! trickle (408, nothing committed), oversized heads (414 / 431 / cut off), and an honest slow
//! upload that still succeeds.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wopigate_testkit::stack::{Stack, StackOptions};
use wopigate_testkit::tree::Content;

use crate::{client, open_as_alice, start, wopi_src_path};

const LIMITS: &str = "header_timeout_ms = 1000
keepalive_timeout_seconds = 3
body_read_timeout_ms = 1000
min_body_rate_bytes_per_second = 2000
min_body_rate_after_ms = 1000
max_header_bytes = 8192
max_header_count = 40
max_uri_bytes = 4096
";

async fn connect(stack: &Stack) -> TcpStream {
    TcpStream::connect(("127.0.0.1", stack.gateway_port))
        .await
        .unwrap()
}

/// Reads until the gateway closes the connection (bounded by `limit`); returns what came and
/// when the close happened, or `None` if it was still open at `limit`.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            s.read(&mut buf),
        )
        .await
        {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `bytes` one at a time, `gap` apart, until the gateway closes the connection (or
/// answers); returns when that happened, `None` if the bytes ran out first.
async fn trickle(s: &mut TcpStream, bytes: &[u8], gap: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    for b in bytes {
        if s.write_all(&[*b]).await.is_err() {
            return Some(started.elapsed());
        }
        match tokio::time::timeout(gap, s.read(&mut buf)).await {
            Err(_) => {}
            Ok(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn docx(stack: &Stack) -> (Vec<u8>, u64) {
    let e = stack.tree.get_by("storage-1", "file-docx").unwrap();
    match e.content {
        Content::Bytes(b) => (b, e.version),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients() {
    let (stack, _gw) = start(StackOptions {
        server_extra: LIMITS.into(),
        ..Default::default()
    })
    .await;
    let (_, body) = open_as_alice(&stack, "file-docx").await;
    let token = crate::enc(body["accesstoken"].as_str().unwrap());
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    let lock = client()
        .post(format!(
            "{}{path}?access_token={token}",
            stack.gateway_url()
        ))
        .header("X-WOPI-Override", "LOCK")
        .header("X-WOPI-Lock", "L")
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    let get_lock = format!(
        "POST {path}?access_token={token} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: GET_LOCK\r\nContent-Length: 0\r\n\r\n"
    );
    let put_head = |len: usize| {
        format!(
            "POST {path}/contents?access_token={token} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: PUT\r\nX-WOPI-Lock: L\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let mut cases = 0;

    // 1. Slowloris on a fresh connection: a header byte every 200 ms (each read well inside
    // pingora's own 60 s read timeout) is cut off once the 1 s head deadline passes.
    let mut s = connect(&stack).await;
    let kept = trickle(&mut s, get_lock.as_bytes(), Duration::from_millis(200))
        .await
        .expect("slowloris head: connection still open");
    assert!(kept < Duration::from_secs(3), "took bytes for {kept:?}");
    cases += 1;

    // 2. A connection that never sends anything closes after the head deadline.
    let mut s = connect(&stack).await;
    let (_, closed) = until_closed(&mut s, Duration::from_secs(4)).await;
    let closed = closed.expect("an idle new connection was kept open");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
    cases += 1;

    // 3. Kept alive: after a request, idling is bounded by the keep-alive timeout (3 s), not
    // by the head deadline; then a slow next head is cut off 1 s after its first byte.
    let mut s = connect(&stack).await;
    s.write_all(get_lock.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = until_closed(&mut s, Duration::from_secs(6)).await;
    let closed = closed.expect("idle kept-alive connection never closed");
    assert!(
        closed > Duration::from_millis(2500) && closed < Duration::from_secs(5),
        "keep-alive idle close after {closed:?}"
    );
    let mut s = connect(&stack).await;
    s.write_all(get_lock.as_bytes()).await.unwrap();
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1500)).await; // idle, but under keep-alive
    let kept = trickle(&mut s, get_lock.as_bytes(), Duration::from_millis(200))
        .await
        .expect("slow second head: connection still open");
    assert!(kept < Duration::from_secs(3), "{kept:?}");
    cases += 2;

    // 4. Slow POST, pausing: half a PutFile body, then silence → 408 after the 1 s pause
    // limit, and the wopiserver never sees a complete upload nor commits anything.
    let before = docx(&stack);
    stack.wopiserver.clear_requests();
    let mut s = connect(&stack).await;
    s.write_all(put_head(4000).as_bytes()).await.unwrap();
    s.write_all(&[b'p'; 2000]).await.unwrap();
    let (answer, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "paused body: connection kept open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    cases += 1;

    // 5. Slow POST, trickling: 20 bytes every 100 ms (200 B/s, under the 2000 B/s floor) →
    // 408 soon after the 1 s grace.
    let mut s = connect(&stack).await;
    s.write_all(put_head(100_000).as_bytes()).await.unwrap();
    let writer = async {
        for _ in 0..60 {
            if s.write_all(&[b't'; 20]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), writer).await;
    let (answer, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "trickled body: connection kept open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    cases += 1;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for r in stack.wopiserver.requests() {
        if r.path.ends_with("/contents") {
            assert!(
                !r.body_complete,
                "a cut-off body reached the wopiserver whole"
            );
        }
    }
    assert_eq!(docx(&stack), before, "a cut-off upload was committed");

    // 6. An honest slow upload (64 KiB over ~1.6 s, 40 KiB/s) is not mistaken for an attack.
    let mut s = connect(&stack).await;
    let content = vec![b'h'; 64 * 1024];
    s.write_all(put_head(content.len()).as_bytes())
        .await
        .unwrap();
    for chunk in content.chunks(4096) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(docx(&stack).0, content, "the slow upload was stored");
    cases += 1;

    // 7. Sizes: long target → 414, large head or too many fields → 431 with a JSON body; a
    // head that never ends is closed at the head deadline; nothing reaches the wopiserver.
    stack.wopiserver.clear_requests();
    let long_target = format!(
        "GET {path}?access_token={token}&pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(5000)
    );
    let big_head = format!(
        "GET {path}?access_token={token} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let many_fields = format!(
        "GET {path}?access_token={token} HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..50)
            .map(|i| format!("X-F{i}: v\r\n"))
            .collect::<String>()
    );
    for (name, request, status, code) in [
        ("long target", long_target, "414", "uri_too_long"),
        ("large head", big_head, "431", "headers_too_large"),
        ("many fields", many_fields, "431", "headers_too_large"),
    ] {
        let mut s = connect(&stack).await;
        s.write_all(request.as_bytes()).await.unwrap();
        let (answer, _) = until_closed(&mut s, Duration::from_secs(3)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {answer}"
        );
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{name}");
        cases += 1;
    }
    let mut s = connect(&stack).await;
    let endless = format!("GET {path} HTTP/1.1\r\nX-Pad: {}", "c".repeat(20_000));
    let _ = s.write_all(endless.as_bytes()).await;
    let (answer, closed) = until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "an endless head was kept open");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    cases += 1;
    assert!(
        stack.wopiserver.requests().is_empty(),
        "an oversized request was forwarded"
    );
    eprintln!("slow and oversized client cases: {cases}, all refused in time");
}
