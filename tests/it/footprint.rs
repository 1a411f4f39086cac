//! What the gateway keeps per connection and per request: idle keep-alive connections cost a few
//! KiB and their memory goes back when they close (issue #16); the access line written without
//! the generic formatter keeps the JSON layout log pipelines parse.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wopigate_testkit::stack::StackOptions;

use super::{client, eventually, gauge, open_as_alice, start, wopi_src_path};

/// Up to `want` connections, within this process's descriptor limit (raised to its hard limit
/// with util-linux's `prlimit`, as the load bench does), keeping 200 for everything else.
fn connections_allowed(want: usize) -> usize {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=4096:"])
        .stderr(std::process::Stdio::null())
        .status();
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(1024);
    want.min(soft.saturating_sub(200))
}

#[tokio::test]
async fn idle_connections_cost_little_and_their_memory_comes_back() {
    let (stack, gw) = start(StackOptions::default()).await;
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    let token = body["accesstoken"].as_str().unwrap();
    let request = format!(
        "GET {path}?access_token={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        super::enc(token)
    );
    let admin = stack.admin_url();
    // Warm: the first requests grow the heap once (caches, pools) whatever the connections.
    for _ in 0..20 {
        let r = client()
            .get(format!("{}{path}", stack.gateway_url()))
            .query(&[("access_token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = gw.rss_bytes().unwrap();
    let n = connections_allowed(3000);
    assert!(n >= 800, "only {n} descriptors for this test");
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", stack.listen_port))
            .await
            .unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        conns.push(s);
    }
    let open = eventually(
        "every connection counted",
        Duration::from_secs(10),
        async || {
            gauge(&admin, "wopigate_open_connections")
                .await
                .map(|v| v as i64)
                .filter(|open| *open >= n as i64)
        },
    )
    .await;
    assert!(open < n as i64 + 10, "{open} open connections counted");
    let with = gw.rss_bytes().unwrap();
    let per_connection = with.saturating_sub(before) / n as u64;
    // pingora's own accept task kept ~8 KiB of TLS handshake state per connection (12 KiB in
    // all before the vendored fix); now ~4.5 KiB.
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes per idle connection (RSS {before} → {with})"
    );
    drop(conns);
    eventually(
        "the connections closed",
        Duration::from_secs(10),
        async || {
            gauge(&admin, "wopigate_open_connections")
                .await
                .filter(|open| *open <= 1.0)
        },
    )
    .await;
    // The memory goes back to the system (glibc keeps freed memory otherwise). Not all of it:
    // timer entries are freed at their deadline, the runtime keeps its registration pages, and
    // this unoptimised build's heap fragments more (the release build returned two thirds of
    // 3 000 connections' growth and three quarters of 10 000's; docs/benchmarks.md).
    let growth = with.saturating_sub(before);
    eventually(
        "the memory of the closed connections handed back",
        Duration::from_secs(15),
        async || {
            let now = gw.rss_bytes()?;
            (now + growth / 10 <= with).then_some(())
        },
    )
    .await;
    eventually("the hand-back logged", Duration::from_secs(5), async || {
        gw.logs().contains("free memory handed back").then_some(())
    })
    .await;
}

#[tokio::test]
async fn json_access_lines_keep_the_formatters_layout() {
    let (stack, gw) = start(StackOptions {
        server_extra: "log_format = \"json\"\n".into(),
        ..Default::default()
    })
    .await;
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    let token = body["accesstoken"].as_str().unwrap();
    let r = client()
        .get(format!("{}{path}", stack.gateway_url()))
        .query(&[("access_token", token)])
        .header("X-Request-Id", "req-\"quoted\"-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = eventually(
        "a CheckFileInfo access line",
        Duration::from_secs(5),
        async || {
            gw.logs().lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["fields"]["operation"] == "CheckFileInfo").then_some(v)
            })
        },
    )
    .await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "wopigate::access");
    let ts = line["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let f = &line["fields"];
    assert_eq!(f["message"], "request");
    assert_eq!(f["listener"], "public");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], path.as_str());
    assert_eq!(f["route"], "wopi_file");
    assert_eq!(f["status"], 200);
    assert_eq!(f["client"], "127.0.0.1");
    assert!(f["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(f["upstream_ms"].as_f64().is_some());
    assert!(f["bytes_out"].as_u64().unwrap() > 0);
    assert!(f.get("error").is_none(), "{f}");
    // A request id that is not a sane one is replaced, never written raw.
    let id = f["request_id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // The query (the token) is never logged.
    assert!(!gw.logs().contains(token));
}

/// What one office session in use costs (issue #26 point 6): its gateway token opened and
/// remembered, the wopiserver token behind it, its session record and access re-check. Printed
/// for the README; bounded here (this unoptimised build's heap is larger than the release's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_use_costs_a_few_kib() {
    let (stack, gw) = start(StackOptions {
        extra_config: "[rate_limits]\nopen_per_user = 0\n".into(),
        tap: false,
        ..Default::default()
    })
    .await;
    // One login, many opens (signing a token per open would dominate this debug build's time).
    let login = stack.idp.token("alice");
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-docx");
    let session = async || {
        let (status, body) = super::legacy_open(&stack, &login, &id).await;
        assert_eq!(status, 200, "{body}");
        let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
        let r = client()
            .get(format!("{}{path}", stack.gateway_url()))
            .query(&[("access_token", body["accesstoken"].as_str().unwrap())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    for _ in 0..100 {
        session().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = gw.rss_bytes().unwrap();
    const N: u64 = 800;
    for _ in 0..N {
        session().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_session = gw.rss_bytes().unwrap().saturating_sub(before) / N;
    eprintln!("memory per session in use: {per_session} bytes (RSS growth over {N} sessions)");
    assert!(per_session < 12 * 1024, "{per_session} bytes per session");
}
