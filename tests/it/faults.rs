//! Nothing lost in transit: a client that breaks off a PutFile never makes the wopiserver see a
//! complete-looking upload, and an upstream that dies mid-GetFile gives the client a truncated
//! transfer, never a clean end.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{Stack, StackOptions};
use wopigate_testkit::tree::Content;

use crate::{bin, client, open_as_alice, start, unsigned_wopi_token, wopi_src_path};

/// Sends `head` and part of a body on a raw connection, and drops it once the upload has
/// reached the wopiserver.
async fn send_and_abort(stack: &Stack, head: &str, body_part: &[u8]) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", stack.gateway_port))
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body_part).await.unwrap();
    s.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stack
        .wopiserver
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with("/contents"))
    {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the wopiserver"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);
}

fn content_of(stack: &Stack) -> (Vec<u8>, u64) {
    let e = stack.tree.get_by("storage-1", "file-docx").unwrap();
    match e.content {
        Content::Bytes(b) => (b, e.version),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_file_aborted_mid_body_never_completes_upstream() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let (_, body) = open_as_alice(&stack, "file-docx").await;
    let token = body["accesstoken"].as_str().unwrap().to_owned();
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    // Lock first, as an office app would.
    let file = format!("{}{path}", stack.gateway_url());
    let r = client()
        .post(&file)
        .query(&[("access_token", &token)])
        .header("X-WOPI-Override", "LOCK")
        .header("X-WOPI-Lock", "L")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = content_of(&stack);
    let target = format!("{path}/contents?access_token={}", crate::enc(&token));
    let cases: [(&str, String, Vec<u8>); 2] = [
        (
            "Content-Length, half sent",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: PUT\r\nX-WOPI-Lock: L\r\nContent-Length: 200000\r\n\r\n"
            ),
            vec![b'x'; 100_000],
        ),
        (
            "chunked, no last chunk",
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: PUT\r\nX-WOPI-Lock: L\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            b"4000\r\n"
                .iter()
                .copied()
                .chain(vec![b'y'; 0x4000])
                .chain(*b"\r\n")
                .collect(),
        ),
    ];
    for (name, head, part) in cases {
        stack.wopiserver.clear_requests();
        send_and_abort(&stack, &head, &part).await;
        // The upload reached the wopiserver and ended there as broken, and nothing was written.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let puts: Vec<_> = stack
                .wopiserver
                .requests()
                .into_iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/contents"))
                .collect();
            if let Some(p) = puts.first()
                && p.body_len > 0
            {
                assert!(
                    !p.body_complete,
                    "{name}: the wopiserver saw a complete upload"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: the upload never reached the wopiserver"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            content_of(&stack),
            before,
            "{name}: a partial upload was committed"
        );
    }
}

/// A wopiserver that answers every request with a body cut short, then closes.
async fn dying_upstream(chunked: bool) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        // Bounded: serves a handful of connections, then stops.
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response: Vec<u8> = if chunked {
                    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    r.extend_from_slice(b"400\r\n");
                    r.extend(vec![b'z'; 0x400]);
                    r.extend_from_slice(b"\r\n");
                    r
                } else {
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
                    r.extend(vec![b'z'; 1000]);
                    r
                };
                let _ = s.write_all(&response).await;
                let _ = s.flush().await;
                // Dies without finishing the body.
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_dying_mid_get_file_gives_a_truncated_transfer() {
    for chunked in [false, true] {
        let stack = Stack::start(StackOptions {
            wrap_tokens: false,
            ..Default::default()
        })
        .await;
        let (port, task) = dying_upstream(chunked).await;
        let config = stack.write_config();
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("url = \"{}\"", stack.wopi_server.url()),
            &format!("url = \"http://127.0.0.1:{port}\""),
        );
        std::fs::write(&config, text).unwrap();
        let _gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = client()
            .get(format!(
                "{}/wopi/files/storage-1!eA==/contents?access_token={}",
                stack.gateway_url(),
                unsigned_wopi_token(4_000_000_000)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "headers were already on their way");
        let mut stream = r.bytes_stream();
        let mut got = 0usize;
        let mut ended_with_error = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => got += b.len(),
                Err(_) => {
                    ended_with_error = true;
                    break;
                }
            }
        }
        assert!(
            ended_with_error,
            "chunked={chunked}: a cut-off body looked complete after {got} bytes"
        );
        assert!(got < 1_000_000);
        task.abort();
    }
}
