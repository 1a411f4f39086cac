//! Operations: metrics after a scripted session (checked by promtool), readiness following its
//! dependencies, sd_notify, the systemd unit, HTTPS with certificate reload, a load loop across a
//! reload and a SIGTERM, mutual TLS to the wopiserver, and no secret in any log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{BIG_FILE_BYTES, Stack, StackOptions};

use crate::{bin, client, legacy_open, start, wopi_get, wopi_src_path};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// A `[<section>.tls]` block trusting the test CA, with the test client certificate when
/// `client_cert` (the doubles of the mutual-TLS tests demand one from CA 2).
fn client_tls_section(section: &str, client_cert: bool) -> String {
    let mut text = format!("\n[{section}.tls]\nca_file = {:?}\n", fixture("ca.pem"));
    if client_cert {
        text.push_str(&format!(
            "cert_file = {:?}\nkey_file = {:?}\n",
            fixture("client.pem"),
            fixture("client.key")
        ));
    }
    text
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// Sum of every sample of `name` whose labels include all of `labels`.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// The admin listener's `/metrics` text.
pub(crate) async fn scrape(stack: &Stack) -> String {
    client()
        .get(format!("{}/metrics", stack.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Opens the docx as alice: (file URL without query, WOPI token, OIDC token).
async fn open_docx(stack: &Stack, base: &str) -> (String, String, String) {
    let oidc = stack.idp.token("alice");
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-docx");
    let (status, body) = legacy_open(stack, &oidc, &id).await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    (
        format!("{base}{path}"),
        body["accesstoken"].as_str().unwrap().to_owned(),
        oidc,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_scripted_session_pass_promtool_and_logs_hold_no_secret() {
    let stack = Stack::start(StackOptions::default()).await;
    let config = stack.write_config();
    // Debug level: pingora's and our own most talkative logs must still be clean.
    let gw = GatewayProcess::start_with_env(
        &bin(),
        &config,
        stack.listen_port,
        &[("RUST_LOG", "debug")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let c = client();
    let (file, wopi_token, oidc) = open_docx(&stack, &stack.gateway_url()).await;
    let q = [("access_token", wopi_token.as_str())];
    let mut bodies = Vec::new();

    let r = c.get(&file).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 200);
    bodies.push(r.text().await.unwrap());
    let r = c
        .get(format!("{file}/contents"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap().len();
    let post = |url: String, op: &'static str| {
        c.post(url)
            .query(&q)
            .header("X-WOPI-Override", op)
            .header("X-WOPI-Lock", "lock-1")
    };
    let r = post(file.clone(), "LOCK").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let saved = b"saved by the metrics test".to_vec();
    let r = post(format!("{file}/contents"), "PUT")
        .body(saved.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(file.clone(), "UNLOCK").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // One rejected token: a forged one.
    let rogue = wopigate_testkit::test_idp::SigningKey::rsa("rogue-kid");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rogue-kid".into());
    let forged =
        jsonwebtoken::encode(&header, &stack.idp.claims("mallory"), &rogue.encoding).unwrap();
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-docx");
    let (status, body) = legacy_open(&stack, &forged, &id).await;
    assert_eq!(status, 401);
    bodies.push(body.to_string());

    let text = scrape(&stack).await;
    let app = stack
        .offices
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| metric(&text, "wopigate_opens_total", &[("app", n)]) > 0.0)
        .expect("an open counted under a configured app");
    assert_eq!(
        metric(&text, "wopigate_opens_total", &[("api", "legacy")]),
        1.0
    );
    for op in ["CheckFileInfo", "GetFile", "Lock", "PutFile", "Unlock"] {
        assert_eq!(
            metric(
                &text,
                "wopigate_wopi_requests_total",
                &[("operation", op), ("app", app), ("status_class", "2xx")]
            ),
            1.0,
            "{op}\n{text}"
        );
        assert_eq!(
            metric(
                &text,
                "wopigate_wopi_request_duration_seconds_count",
                &[("operation", op)]
            ),
            1.0
        );
    }
    assert_eq!(
        metric(
            &text,
            "wopigate_wopi_request_bytes_total",
            &[("operation", "PutFile")]
        ),
        saved.len() as f64
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_wopi_response_bytes_total",
            &[("operation", "GetFile")]
        ),
        got as f64
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_token_validations_total",
            &[("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_token_validations_total",
            &[("outcome", "unknown_kid")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_open_failures_total",
            &[("reason", "invalid_token")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_token_exchanges_total",
            &[("mode", "mint"), ("outcome", "ok")]
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            "wopigate_upstream_request_duration_seconds_count",
            &[("upstream", "reva"), ("call", "Stat")]
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "wopigate_upstream_request_duration_seconds_count",
            &[("upstream", "wopiserver"), ("call", "openinapp")]
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "wopigate_discovery_refreshes_total",
            &[("outcome", "ok")]
        ) >= 2.0
    );
    assert!(metric(&text, "wopigate_jwks_refreshes_total", &[("outcome", "ok")]) >= 1.0);
    assert!(
        metric(
            &text,
            "wopigate_cache_lookups_total",
            &[("cache", "discovery"), ("result", "hit")]
        ) >= 1.0
    );
    assert_eq!(metric(&text, "wopigate_build_info", &[]), 1.0);
    // The scrape itself is not in flight on the public listener.
    assert_eq!(
        metric(
            &text,
            "wopigate_requests_in_flight",
            &[("listener", "public")]
        ),
        0.0
    );

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => wopigate_testkit::skip_without("promtool", "promtool check metrics"),
    }

    // Secret hygiene: nothing this session used shows up in the log, the metrics or any body.
    let reva_token = stack
        .wopiserver
        .requests()
        .iter()
        .find_map(|r| r.header("tokenheader").map(str::to_owned))
        .expect("the wopiserver saw a REVA token");
    // The wopiserver's own token, behind the gateway token the client holds.
    let upstream_token = stack
        .wopiserver
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/wopi/files/"))
        .find_map(|r| {
            url::form_urlencoded::parse(r.query.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        })
        .expect("the wopiserver saw its token");
    assert!(
        wopi_token.starts_with("wg1."),
        "the client holds a gateway token"
    );
    let log = gw.logs();
    assert!(log.contains("wopigate::access"), "access log lines present");
    let haystacks = [
        ("log", log.as_str()),
        ("metrics", text.as_str()),
        ("bodies", &bodies.join("\n")),
    ];
    for (what, secret) in [
        ("REVA JWT secret", stack.reva_secret.as_str()),
        ("IOP secret", stack.iop_secret.as_str()),
        ("wopiserver secret", stack.wopi_secret.as_str()),
        ("OIDC token", oidc.as_str()),
        ("forged OIDC token", forged.as_str()),
        ("wopiserver token", upstream_token.as_str()),
        ("REVA token", reva_token.as_str()),
    ] {
        // The signature part alone must not leak either.
        let tail = secret.rsplit('.').next().unwrap_or(secret);
        for (name, hay) in haystacks {
            assert!(!hay.contains(secret), "{what} found in {name}");
            assert!(
                tail.len() < 16 || !hay.contains(tail),
                "{what} signature found in {name}"
            );
        }
    }
    // The client's own gateway token is in the answers meant for it, never in logs or metrics.
    for (name, hay) in &haystacks[..2] {
        assert!(
            !hay.contains(wopi_token.as_str()),
            "gateway token found in {name}"
        );
    }
}

async fn ready(stack: &Stack) -> (u16, serde_json::Value) {
    let r = client()
        .get(format!("{}/readyz", stack.admin_url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn check<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {body}"))
}

/// Polls `/readyz` until it answers `want` (bounded).
async fn ready_becomes(stack: &Stack, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ready(stack).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_reva_and_the_wopiserver() {
    let (mut stack, _gw) = start(StackOptions::default()).await;
    let r = client()
        .get(format!("{}/healthz", stack.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = ready_becomes(&stack, 200).await;
    for name in [
        "jwks",
        "discovery:Collabora",
        "discovery:Microsoft Office Online",
        "reva",
        "wopiserver",
    ] {
        assert_eq!(check(&body, name)["ok"], true, "{body}");
    }

    let reva_addr = stack.reva_server.addr;
    stack.reva_server.stop().await;
    let body = ready_becomes(&stack, 503).await;
    assert_eq!(check(&body, "reva")["ok"], false, "{body}");
    // The wopiserver cannot reach REVA either, and says so on its health page.
    let body = crate::eventually(
        "the wopiserver reported FAIL",
        Duration::from_secs(10),
        async || {
            let (_, body) = ready(&stack).await;
            (check(&body, "wopiserver")["ok"] == false).then_some(body)
        },
    )
    .await;
    assert_eq!(
        check(&body, "wopiserver")["detail"],
        "reports Health status: FAIL",
        "{body}"
    );
    stack.reva_server = stack.reva.serve(reva_addr).await.unwrap();
    ready_becomes(&stack, 200).await;

    let wopi_addr = stack.wopi_server.addr;
    stack.wopi_server.stop().await;
    let body = ready_becomes(&stack, 503).await;
    assert_eq!(check(&body, "wopiserver")["ok"], false, "{body}");
    assert_eq!(check(&body, "reva")["ok"], true, "{body}");
    stack.wopi_server = stack.wopiserver.serve(wopi_addr).await.unwrap();
    ready_becomes(&stack, 200).await;

    // The admin listener answers nothing else, and never proxies.
    let r = client()
        .get(format!("{}/wopi/files/x", stack.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        wopigate_testkit::skip_without("systemd-analyze", "the systemd unit check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/wopigate.service"),
    )
    .unwrap()
    .replace("/usr/bin/wopigate", bin().to_str().unwrap());
    assert!(
        unit.contains("Type=notify")
            && unit.contains("ExecReload=")
            && unit.contains("LoadCredential=")
    );
    let path = dir.path().join("wopigate.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("wopigate.service"),
        "verify complained: {stderr}"
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let level: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for wopigate.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    eprintln!("systemd-analyze security exposure: {level}");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{stdout}");
}

/// Receives sd_notify datagrams until one contains `want` (bounded).
async fn notified(sock: &tokio::net::UnixDatagram, want: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want} notification"))
            .unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == want || l.starts_with(want)) {
            return msg;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_ready_reloading_and_stopping() {
    let stack = Stack::start(StackOptions::default()).await;
    let config = stack.write_config();
    let sock_path = stack.dir().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let mut gw = GatewayProcess::start_with_env(
        &bin(),
        &config,
        stack.listen_port,
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    notified(&sock, "READY=1").await;
    // READY means every listener accepts.
    for port in [stack.gateway_port, stack.admin_port] {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
    }
    gw.signal("HUP");
    let reloading = notified(&sock, "RELOADING=1").await;
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notified(&sock, "READY=1").await;
    gw.signal("TERM");
    notified(&sock, "STOPPING=1").await;
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
}

/// The certificate a fresh TLS handshake with the gateway presents (DER).
async fn presented_cert(port: u16) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for pem in ["ca.pem", "ca2.pem"] {
        for c in CertificateDer::pem_file_iter(fixture(pem)).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(fixture(pem))
        .unwrap()
        .to_vec()
}

fn https_client() -> reqwest::Client {
    wopigate::http_client::install_crypto_provider();
    let mut bundle = read("ca.pem");
    bundle.extend(read("ca2.pem"));
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&bundle).unwrap())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_certificate_reload_serves_the_new_one_while_a_long_get_file_completes() {
    // Untapped: the public listener speaks TLS here.
    let stack = Stack::start(StackOptions {
        tap: false,
        ..Default::default()
    })
    .await;
    let (cert, key) = (stack.dir().join("tls.crt"), stack.dir().join("tls.key"));
    std::fs::copy(fixture("server.pem"), &cert).unwrap();
    std::fs::copy(fixture("server.key"), &key).unwrap();
    let config = stack.write_config();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[server]\n",
        &format!("[server]\ntls = {{ cert_file = {cert:?}, key_file = {key:?} }}\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = format!("https://127.0.0.1:{}", stack.gateway_port);
    assert_eq!(
        presented_cert(stack.gateway_port).await,
        der_of("server.pem")
    );

    // Open and start a long GetFile over HTTPS on the original certificate.
    let c = https_client();
    let oidc = stack.idp.token("alice");
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-big");
    let r = c
        .get(format!(
            "{base}/api/v0/wopi/open?fileId={}",
            crate::enc(&id)
        ))
        .bearer_auth(&oidc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    let token = body["accesstoken"].as_str().unwrap();
    let r = c
        .get(format!("{base}{path}/contents"))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = stream.next().await.unwrap().unwrap().len() as u64;

    // Renew: new files, SIGHUP. New handshakes get the new certificate.
    std::fs::copy(fixture("server2.pem"), &cert).unwrap();
    std::fs::copy(fixture("server2.key"), &key).unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented_cert(stack.gateway_port).await != der_of("server2.pem") {
        assert!(
            Instant::now() < deadline,
            "new certificate not served:\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A request on a new connection works with the new certificate.
    let r = https_client()
        .get(format!("{base}{path}"))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The transfer that started before the reload completes, byte for byte.
    while let Some(chunk) = stream.next().await {
        got += chunk.expect("the old connection keeps streaming").len() as u64;
    }
    assert_eq!(got, BIG_FILE_BYTES);

    // A broken certificate is refused by the reload; the current one stays.
    std::fs::write(&cert, b"not a certificate").unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.logs().contains("reload failed") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        presented_cert(stack.gateway_port).await,
        der_of("server2.pem")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_across_a_reload_and_a_sigterm_loses_no_request() {
    let stack = Stack::start(StackOptions::default()).await;
    let config = stack.write_config();
    // Up to 60 s of drain for what is in flight at SIGTERM; the gateway leaves as soon as
    // nothing is.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("grace_period_seconds = 0", "grace_period_seconds = 60");
    std::fs::write(&config, text).unwrap();
    let mut gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (file, token, _) = open_docx(&stack, &stack.gateway_url()).await;
    let big_id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-big");
    let (status, body) = legacy_open(&stack, &stack.idp.token("alice"), &big_id).await;
    assert_eq!(status, 200);
    let big = format!(
        "{}{}/contents",
        stack.gateway_url(),
        wopi_src_path(body["wopiclienturl"].as_str().unwrap())
    );
    let big_token = body["accesstoken"].as_str().unwrap().to_owned();

    let terminated: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (file, token, terminated, stop, answered) = (
            file.clone(),
            token.clone(),
            terminated.clone(),
            stop.clone(),
            answered.clone(),
        );
        workers.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut refused, mut failed) = (0u32, 0u32, Vec::new());
            // Bounded: at most 5000 requests or until the listener is gone.
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = c.get(&file).query(&[("access_token", &token)]).send().await;
                let after_term = terminated.lock().unwrap().is_some();
                match r {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => {
                            ok += 1;
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failed.push(format!("truncated body: {e}")),
                    },
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    // After SIGTERM the listener closes: being turned away at the door is the
                    // expected answer, not a lost request.
                    Err(e) if after_term => {
                        refused += 1;
                        if e.is_connect() {
                            break;
                        }
                    }
                    Err(e) => failed.push(format!("before SIGTERM: {e}")),
                }
            }
            (ok, refused, failed)
        }));
    }
    // The load runs before, during and after the reload: wait for answers, not for time.
    let answers_reach = async |n: u32| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while answered.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "{}", gw.logs());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    answers_reach(50).await;
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.logs().contains("reload complete") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answers_reach(answered.load(Ordering::Relaxed) + 50).await;

    // A long transfer in flight when SIGTERM arrives.
    let r = wopi_get(&big, &big_token).await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = stream.next().await.unwrap().unwrap().len() as u64;
    *terminated.lock().unwrap() = Some(Instant::now());
    gw.signal("TERM");
    let term_at = Instant::now();
    while let Some(chunk) = stream.next().await {
        got += chunk
            .unwrap_or_else(|e| {
                panic!(
                    "in-flight transfer cut after {:?} at {got} bytes: {e}\n{}",
                    term_at.elapsed(),
                    gw.logs()
                )
            })
            .len() as u64;
    }
    eprintln!(
        "in-flight GetFile of {got} bytes finished {:?} after SIGTERM",
        term_at.elapsed()
    );
    assert_eq!(got, BIG_FILE_BYTES);
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut refused) = (0, 0);
    for w in workers {
        let (o, r, failed) = w.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        ok += o;
        refused += r;
    }
    eprintln!(
        "load loop: {ok} requests answered 200 across the reload, {refused} turned away after SIGTERM, 0 failed"
    );
    assert!(ok > 100, "the loop ran ({ok})");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits once drained, well before the 60 s grace period");
    assert!(status.success(), "{status}");
    assert!(gw.logs().contains("drained"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wopiserver_over_mutual_tls_with_a_pinned_ca() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let addr = stack.wopi_server.addr;
    stack.wopi_server.stop().await;
    // The wopiserver now speaks TLS with the test CA's certificate and demands a client
    // certificate from CA 2.
    stack.wopi_server = stack
        .wopiserver
        .serve_tls(
            addr,
            &read("server.pem"),
            &read("server.key"),
            Some(&read("ca2.pem")),
        )
        .await
        .unwrap();
    let plain = stack.write_config();
    let https_url = format!("https://localhost:{}", addr.port());
    let with_tls = |client_cert: bool| {
        let text = std::fs::read_to_string(&plain).unwrap().replace(
            &format!("url = \"http://{addr}\""),
            &format!("url = \"{https_url}\""),
        );
        text + &client_tls_section("wopiserver", client_cert)
    };
    let config = stack.dir().join("mtls.toml");
    std::fs::write(&config, with_tls(true)).unwrap();
    let gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (file, token, _) = open_docx(&stack, &stack.gateway_url()).await;
    let r = wopi_get(&file, &token).await;
    assert_eq!(r.status(), 200, "proxied over mutual TLS");
    let body = ready_becomes(&stack, 200).await;
    assert_eq!(check(&body, "wopiserver")["ok"], true);
    drop(gw);

    // Without the client certificate the wopiserver refuses the handshake: a clean 5xx.
    let seen = stack.wopiserver.requests().len();
    std::fs::write(&config, with_tls(false)).unwrap();
    let _gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-docx");
    let (status, body) = legacy_open(&stack, &stack.idp.token("alice"), &id).await;
    assert!(matches!(status, 502 | 503), "{status} {body}");
    let r = wopi_get(&file, &token).await;
    assert!(matches!(r.status().as_u16(), 502 | 503), "{}", r.status());
    assert_eq!(
        stack.wopiserver.requests().len(),
        seen,
        "nothing got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reva_over_mutual_tls_and_the_idp_over_https_with_pinned_cas() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let (reva_addr, idp_addr) = (stack.reva_server.addr, stack.idp_server.addr);
    stack.reva_server.stop().await;
    stack.idp_server.stop().await;
    stack.reva_server = stack
        .reva
        .serve_tls(
            reva_addr,
            &read("server.pem"),
            &read("server.key"),
            Some(&read("ca2.pem")),
        )
        .await
        .unwrap();
    stack.idp_server = stack
        .idp
        .serve_https(idp_addr, &read("server.pem"), &read("server.key"))
        .await
        .unwrap();
    // The wopiserver reaches REVA there too, with its own client certificate.
    stack.wopiserver.set_reva(
        &url::Url::parse(&format!("https://localhost:{}", reva_addr.port())).unwrap(),
        &wopigate::tls::ClientTls {
            ca_pem: Some(read("ca.pem")),
            identity_pem: Some((read("client.pem"), read("client.key"))),
        },
    );
    let config_with = |client_cert: bool| {
        let text = stack.config_toml().replace(
            &format!("gateway = \"http://{reva_addr}\""),
            &format!("gateway = \"https://localhost:{}\"", reva_addr.port()),
        );
        text + &client_tls_section("oidc", false) + &client_tls_section("reva", client_cert)
    };
    assert!(stack.idp.issuer().starts_with("https://"));
    let config = stack.dir().join("tls-upstreams.toml");
    std::fs::write(&config, config_with(true)).unwrap();
    let gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // JWKS over HTTPS, Stat over gRPC with mutual TLS.
    let (file, token, _) = open_docx(&stack, &stack.gateway_url()).await;
    assert!(file.contains("/wopi/files/"));
    assert!(!token.is_empty());
    assert!(stack.reva.calls().iter().any(|c| c.method == "Stat"));
    let body = ready_becomes(&stack, 200).await;
    assert_eq!(check(&body, "reva")["ok"], true);
    assert_eq!(check(&body, "jwks")["ok"], true);
    drop(gw);

    // REVA demands a client certificate: without one, a clean 5xx and no Stat.
    stack.reva.clear_calls();
    std::fs::write(&config, config_with(false)).unwrap();
    let _gw = GatewayProcess::start(&bin(), &config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, "file-docx");
    let (status, body) = legacy_open(&stack, &stack.idp.token("alice"), &id).await;
    assert!(matches!(status, 502 | 503), "{status} {body}");
    assert!(stack.reva.calls().is_empty(), "no call got through");
    let body = ready_becomes(&stack, 503).await;
    assert_eq!(check(&body, "reva")["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_the_new_configuration_and_a_bad_one_changes_nothing() {
    let (stack, gw) = start(StackOptions::default()).await;
    let listed = |body: &serde_json::Value| {
        check(body, "discovery:Microsoft Office Online");
    };
    let body = ready_becomes(&stack, 200).await;
    listed(&body);
    let config = stack.dir().join("wopigate.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    // Drop the second office app and reload.
    let without_ms = original
        .split("\n[[office]]")
        .filter(|part| !part.contains("name = \"Microsoft Office Online\""))
        .collect::<Vec<_>>()
        .join("\n[[office]]");
    assert!(!without_ms.contains("Microsoft Office Online"));
    std::fs::write(&config, &without_ms).unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = ready(&stack).await;
        let names: Vec<_> = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        if !names.iter().any(|n| n.contains("Microsoft")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not applied: {names:?}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The public listener follows too: /app/list no longer offers the removed app.
    let list = client()
        .get(format!("{}/app/list", stack.gateway_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains("Microsoft Office Online"), "{list}");
    assert!(list.contains("Collabora"), "{list}");

    // An invalid file: the reload fails, is counted, and the running configuration stays.
    std::fs::write(
        &config,
        without_ms.replace("[exchange]\n", "[exchange]\nbogus = 1\n"),
    )
    .unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw.logs().contains("reload failed") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = scrape(&stack).await;
    assert_eq!(
        metric(&text, "wopigate_config_reloads_total", &[("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "wopigate_config_reloads_total",
            &[("outcome", "failed")]
        ),
        1.0
    );
    let (status, _) = crate::open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200, "still serving after a failed reload");
}
