//! Upstream faults (issue #7 point 4): REVA, the wopiserver, the IdP and office discovery each
//! put behind a [`FaultProxy`] and, in turn, stopped, slowed past the gateway's deadline,
//! answering garbage, and resetting mid-response. Every case must give its precise status
//! within the configured deadline, leave nothing in flight, and the gateway must recover by
//! itself once the upstream is healthy again.

use std::time::{Duration, Instant};

use wopigate::ids::encode_legacy;
use wopigate_testkit::fault_proxy::{Fault, FaultProxy};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::test_idp::SigningKey;

use crate::{client, legacy_open, start_gateway};

const FAULTS: [Fault; 4] = [
    Fault::Stopped,
    Fault::Slow(Duration::from_secs(10)),
    Fault::Garbage,
    Fault::ResetMidResponse,
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Upstream {
    Reva,
    Wopiserver,
    Idp,
    Discovery,
}

/// A stack whose gateway reaches `which` through a fault proxy, with short deadlines: REVA 2 s,
/// openinapp 3 s, proxied WOPI reads 2 s, IdP 1.5 s, discovery refreshed every second.
async fn fronted(which: Upstream) -> (Stack, GatewayProcess, FaultProxy) {
    let stack = Stack::start(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let target = match which {
        Upstream::Reva => stack.reva_server.addr,
        Upstream::Wopiserver => stack.wopi_server.addr,
        Upstream::Idp => stack.idp_server.addr,
        Upstream::Discovery => stack.office_servers[0].addr,
    };
    let proxy = FaultProxy::start(target).await.unwrap();
    let real = format!("http://{target}");
    if which == Upstream::Idp {
        // Tokens and the discovery document name the proxy as issuer.
        stack.idp.set_issuer(&proxy.url());
    }
    let config = stack.write_config();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("\"{real}"), &format!("\"{}", proxy.url()))
        .replace(
            "timeout_ms = 3000\n",
            "timeout_ms = 3000\nproxy_read_timeout_seconds = 2\n",
        )
        .replace(
            "jwks_min_refetch_seconds = 1\n",
            "jwks_min_refetch_seconds = 1\nhttp_timeout_ms = 1500\n",
        )
        .replace(
            "refetch_min_seconds = 1\n",
            "refetch_min_seconds = 1\nrefresh_seconds = 1\n",
        );
    assert!(text.contains(&proxy.url()), "config points at the proxy");
    std::fs::write(&config, text).unwrap();
    let gw = start_gateway(&stack, &config).await;
    (stack, gw, proxy)
}

async fn open(stack: &Stack, token: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let (s, b) = legacy_open(stack, token, &encode_legacy(STORAGE, "file-docx")).await;
    (s, b, started.elapsed())
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Nothing left in flight on the public listener once every answer is in.
async fn assert_nothing_in_flight(stack: &Stack, case: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let m = crate::ops::scrape(stack).await;
        let in_flight = sample(&m, "wopigate_requests_in_flight{listener=\"public\"} ");
        if in_flight == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: {in_flight} requests still in flight"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `probe` until it reports success (bounded): the gateway recovers by itself.
async fn recovers<F, Fut>(case: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if probe().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{case}: no recovery within 15 s of the upstream coming back");
}

/// One row of the matrix: status and error code expected, and the deadline it must come within.
struct Expect {
    status: u16,
    code: Option<&'static str>,
    within: Duration,
}

fn check(case: &str, got: (u16, &serde_json::Value, Duration), want: &Expect) {
    let (status, body, took) = got;
    assert_eq!(
        (status, body["code"].as_str()),
        (want.status, want.code),
        "{case}: {body}"
    );
    assert!(took < want.within, "{case}: answered after {took:?}");
}

/// What a client is told when an upstream it needs has `fault`.
fn expected_from_upstream(fault: Fault) -> (u16, &'static str) {
    match fault {
        Fault::Stopped => (503, "unavailable"),
        Fault::Slow(_) => (504, "upstream_timeout"),
        _ => (502, "upstream_error"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reva_faults() {
    let (stack, _gw, proxy) = fronted(Upstream::Reva).await;
    let token = stack.idp.token("alice");
    let (s, b, _) = open(&stack, &token).await;
    assert_eq!(s, 200, "{b}");
    let mut rows = 0;
    for fault in FAULTS {
        proxy.set(fault).await;
        let case = format!("REVA {}", fault.name());
        let want = expected_from_upstream(fault);
        let (s, b, took) = open(&stack, &token).await;
        check(
            &case,
            (s, &b, took),
            &Expect {
                status: want.0,
                code: Some(want.1),
                within: Duration::from_secs(4),
            },
        );
        assert_nothing_in_flight(&stack, &case).await;
        proxy.set(Fault::None).await;
        let took = recovers(&case, || async { open(&stack, &token).await.0 == 200 }).await;
        eprintln!("{case}: {s} in {:?}, recovered in {took:?}", b["code"]);
        rows += 1;
    }
    assert_eq!(rows, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wopiserver_faults() {
    let (stack, _gw, proxy) = fronted(Upstream::Wopiserver).await;
    let token = stack.idp.token("alice");
    let (s, b, _) = open(&stack, &token).await;
    assert_eq!(s, 200, "{b}");
    let file_url = format!(
        "{}{}?access_token={}",
        stack.gateway_url(),
        crate::wopi_src_path(b["wopiclienturl"].as_str().unwrap()),
        crate::enc(b["accesstoken"].as_str().unwrap())
    );
    // (status, body — Err when the transfer broke off —, time); status 0 when it broke off
    // before the head (the gateway holds a CheckFileInfo answer whole to amend it).
    let check_file_info = || async {
        let started = Instant::now();
        let r = match client().get(&file_url).send().await {
            Ok(r) => r,
            Err(e) => return (0, Err(e.to_string()), started.elapsed()),
        };
        let status = r.status().as_u16();
        let body = match r.bytes().await {
            Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (status, body, started.elapsed())
    };
    let mut rows = 0;
    for fault in FAULTS {
        proxy.set(fault).await;
        let want = expected_from_upstream(fault);
        // The open API's openinapp call (deadline 3 s) and proxied WOPI traffic (2 s).
        let case = format!("wopiserver {} (open)", fault.name());
        let (s, b, took) = open(&stack, &token).await;
        let expect = Expect {
            status: want.0,
            code: Some(want.1),
            within: Duration::from_secs(5),
        };
        check(&case, (s, &b, took), &expect);
        let case = format!("wopiserver {} (CheckFileInfo)", fault.name());
        let (s, b, took) = check_file_info().await;
        match (fault, s, b) {
            // The head got through before the reset: the client must see the transfer break
            // off, never a complete-looking answer.
            (Fault::ResetMidResponse, 0 | 200, body) => {
                assert!(
                    body.is_err(),
                    "{case}: a cut answer looked complete: {body:?}"
                );
                assert!(took < expect.within, "{case}: {took:?}");
            }
            (_, s, Ok(b)) => check(&case, (s, &b, took), &expect),
            (_, s, Err(e)) => panic!("{case}: {s} with a broken body: {e}"),
        }
        assert_nothing_in_flight(&stack, &case).await;
        proxy.set(Fault::None).await;
        let took = recovers(&case, || async {
            let (s, b, _) = check_file_info().await;
            s == 200 && b.is_ok() && open(&stack, &token).await.0 == 200
        })
        .await;
        eprintln!("{case}: recovered in {took:?}");
        rows += 2;
    }
    assert_eq!(rows, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_faults() {
    let (stack, _gw, proxy) = fronted(Upstream::Idp).await;
    let mut rows = 0;
    for (i, fault) in FAULTS.into_iter().enumerate() {
        // A key the gateway has not seen yet: validating its token needs the IdP.
        let kid = format!("rotated-{i}");
        stack.idp.add_key(SigningKey::rsa(&kid));
        let new_key_token = stack.idp.sign(&kid, &stack.idp.claims("alice"));
        let mut claims = stack.idp.claims("alice");
        claims["jti"] = format!("fresh-{i}").into();
        let known_key_token = stack.idp.sign("rsa-1", &claims);
        tokio::time::sleep(Duration::from_millis(1100)).await; // past jwks_min_refetch
        proxy.set(fault).await;
        let case = format!("IdP {}", fault.name());
        let (s, b, took) = open(&stack, &new_key_token).await;
        check(
            &format!("{case} (new kid)"),
            (s, &b, took),
            &Expect {
                status: 401,
                code: Some("invalid_token"),
                within: Duration::from_secs(4),
            },
        );
        let (s, b, _) = open(&stack, &known_key_token).await;
        assert_eq!(s, 200, "{case}: a known key must keep validating: {b}");
        assert_nothing_in_flight(&stack, &case).await;
        proxy.set(Fault::None).await;
        let took = recovers(&case, || async {
            open(&stack, &new_key_token).await.0 == 200
        })
        .await;
        eprintln!("{case}: 401 in {:?}, recovered in {took:?}", b["code"]);
        rows += 1;
    }
    assert_eq!(rows, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_faults() {
    let (stack, _gw, proxy) = fronted(Upstream::Discovery).await;
    let token = stack.idp.token("alice");
    let failed = "wopigate_discovery_refreshes_total{app=\"Collabora\",outcome=\"failed\"} ";
    let ok = "wopigate_discovery_refreshes_total{app=\"Collabora\",outcome=\"ok\"} ";
    let mut rows = 0;
    for fault in FAULTS {
        proxy.set(fault).await;
        let case = format!("discovery {}", fault.name());
        // Refreshes (every second, 2 s deadline) fail and are counted …
        let before = sample(&crate::ops::scrape(&stack).await, failed);
        let started = Instant::now();
        while sample(&crate::ops::scrape(&stack).await, failed) <= before {
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "{case}: no failed refresh counted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // … while opens keep being served from the last good document, promptly.
        let (s, b, took) = open(&stack, &token).await;
        check(
            &case,
            (s, &b, took),
            &Expect {
                status: 200,
                code: None,
                within: Duration::from_secs(2),
            },
        );
        assert_nothing_in_flight(&stack, &case).await;
        proxy.set(Fault::None).await;
        let ok_before = sample(&crate::ops::scrape(&stack).await, ok);
        let took = recovers(&case, || async {
            sample(&crate::ops::scrape(&stack).await, ok) > ok_before
        })
        .await;
        eprintln!("{case}: opens unaffected, refresh ok again after {took:?}");
        rows += 1;
    }
    assert_eq!(rows, 4);
}
