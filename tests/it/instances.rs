//! Several wopiserver instances (issue #18): one file stays on one instance, refused
//! connections fail over, writes are never replayed, health checks take an instance out and
//! bring it back, the per-instance cap answers 503 + Retry-After, rate limits 429.

use std::time::Duration;

use wopigate_testkit::fake_wopiserver::FakeWopiserver;
use wopigate_testkit::fault_proxy::{Fault, FaultProxy};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::{WopiFile as Opened, client, eventually, open_wopi_file as open, start_gateway};

/// Two instances, each behind a fault proxy; quick health checks.
struct Two {
    stack: Stack,
    proxies: [FaultProxy; 2],
    gw: GatewayProcess,
}

const FAST_HEALTH: &str = "
[wopiserver.health_check]
interval_ms = 200
timeout_ms = 150
healthy_after = 1
unhealthy_after = 1
";

/// Health checks that do not run during the test: what is exercised is the request's own
/// failover, not the probe taking the instance out first.
const NO_HEALTH: &str = "
[wopiserver.health_check]
interval_ms = 600000
timeout_ms = 1000
";

/// Extra `.docx` files, so the ring has files for both instances.
const FILES: usize = 12;

fn seed_files(stack: &Stack) {
    for i in 0..FILES {
        crate::add_docx(stack, &format!("file-s{i}"), &format!("s{i}.docx"));
    }
}

async fn two(health: &str, wopiserver_keys: &str) -> Two {
    let stack = Stack::start(StackOptions {
        wopiservers: 2,
        extra_config: health.to_owned(),
        ..Default::default()
    })
    .await;
    seed_files(&stack);
    let proxies = [
        FaultProxy::start(stack.wopi_server.addr).await.unwrap(),
        FaultProxy::start(stack.more_wopiservers[0].1.addr)
            .await
            .unwrap(),
    ];
    let text = stack
        .config_toml()
        .replace(&stack.wopi_server.url(), &proxies[0].url())
        .replace(&stack.more_wopiservers[0].1.url(), &proxies[1].url())
        .replace(
            "timeout_ms = 3000\n",
            &format!("timeout_ms = 3000\n{wopiserver_keys}"),
        );
    let config = stack.dir().join("two.toml");
    std::fs::write(&config, text).unwrap();
    let gw = start_gateway(&stack, &config).await;
    Two { stack, proxies, gw }
}

fn fakes(stack: &Stack) -> [&FakeWopiserver; 2] {
    [&stack.wopiserver, &stack.more_wopiservers[0].0]
}

/// Which instances saw a request matching `what` for the file, counted.
fn seen(
    stack: &Stack,
    what: impl Fn(&wopigate_testkit::fake_wopiserver::Recorded) -> bool,
) -> [usize; 2] {
    let f = fakes(stack);
    [0, 1].map(|i| f[i].requests().iter().filter(|r| what(r)).count())
}

fn opened_here(opaque: &str) -> impl Fn(&wopigate_testkit::fake_wopiserver::Recorded) -> bool {
    let q = format!("fileid={opaque}&");
    move |r| r.path == "/wopi/iop/openinapp" && r.query.contains(&q)
}

fn wopi_calls(r: &wopigate_testkit::fake_wopiserver::Recorded) -> bool {
    r.path.starts_with("/wopi/files/")
}

async fn wopi(
    o: &Opened,
    method: &str,
    suffix: &str,
    op: Option<&str>,
    body: &[u8],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut r = client()
        .request(method.parse().unwrap(), format!("{}{suffix}", o.url))
        .query(&[("access_token", o.token.as_str())]);
    if let Some(op) = op {
        r = r
            .header("X-WOPI-Override", op)
            .header("X-WOPI-Lock", "lock-1");
    }
    let resp = r.body(body.to_vec()).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// The instance each of the seeded files is opened on.
async fn homes(stack: &Stack) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for i in 0..FILES {
        let opaque = format!("file-s{i}");
        open(stack, &opaque).await;
        let n = seen(stack, opened_here(&opaque));
        assert_eq!(n.iter().sum::<usize>(), 1, "{opaque}: {n:?}");
        out.push((opaque, if n[0] == 1 { 0 } else { 1 }));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_stays_on_its_instance_and_moves_when_that_refuses_connections() {
    let t = two(NO_HEALTH, "eject_seconds = 30\n").await;
    let s = &t.stack;
    let homes = homes(s).await;
    assert!(
        homes.iter().any(|h| h.1 == 0) && homes.iter().any(|h| h.1 == 1),
        "the ring spreads files over both instances: {homes:?}"
    );
    // Every WOPI call of a file goes where its open went.
    for (opaque, home) in homes.iter().take(4) {
        for f in fakes(s) {
            f.clear_requests();
        }
        let o = open(s, opaque).await;
        assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
        assert_eq!(wopi(&o, "GET", "/contents", None, b"").await.0, 200);
        let n = seen(s, wopi_calls);
        assert_eq!(n[*home], 2, "{opaque} on instance {home}: {n:?}");
        assert_eq!(n[1 - *home], 0, "{opaque}: {n:?}");
    }

    // Instance 0 refuses connections: its files are served by instance 1 without an error,
    // reads and writes alike (nothing reached instance 0).
    let (opaque, _) = homes.iter().find(|h| h.1 == 0).unwrap();
    let o = open(s, opaque).await;
    t.proxies[0].set(Fault::Stopped).await;
    for f in fakes(s) {
        f.clear_requests();
    }
    assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
    let (st, _, body) = wopi(&o, "GET", "/contents", None, b"").await;
    assert_eq!(st, 200);
    assert!(!body.is_empty());
    assert_eq!(wopi(&o, "POST", "", Some("LOCK"), b"").await.0, 200);
    let (st, _, _) = wopi(
        &o,
        "POST",
        "/contents",
        Some("PUT"),
        b"saved while 0 was down",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(wopi(&o, "POST", "", Some("UNLOCK"), b"").await.0, 200);
    assert_eq!(seen(s, wopi_calls), [0, 5]);
    let stored = s.tree.get_by(STORAGE, opaque).unwrap().content;
    assert!(
        matches!(&stored, wopigate_testkit::tree::Content::Bytes(b) if b == b"saved while 0 was down"),
        "{stored:?}"
    );
    // A new open of that file goes to instance 1 as well.
    open(s, opaque).await;
    assert_eq!(seen(s, opened_here(opaque)), [0, 1]);
    let failovers = crate::gauge(
        &s.admin_url(),
        "wopigate_wopiserver_instance_failovers_total{wopiserver=\"wopi-0\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(failovers >= 1.0, "failovers counted: {failovers}");
    drop(t.gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_reached_an_instance_is_never_replayed() {
    let t = two(NO_HEALTH, "").await;
    let s = &t.stack;
    let homes = homes(s).await;
    let (opaque, home) = homes[0].clone();
    let o = open(s, &opaque).await;
    assert_eq!(wopi(&o, "POST", "", Some("LOCK"), b"").await.0, 200);
    let before = s.tree.get_by(STORAGE, &opaque).unwrap().content;
    // The file's instance takes the connection and part of the request, then dies.
    t.proxies[home].set(Fault::SwallowRequest).await;
    for f in fakes(s) {
        f.clear_requests();
    }
    let other = 1 - home;
    let other_before = t.proxies[other].accepted();
    let body = vec![b'x'; 100 * 1024];
    let (st, headers, answer) = wopi(&o, "POST", "/contents", Some("PUT"), &body).await;
    assert!(st == 502 || st == 503, "a clean 5xx, got {st}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The PutFile reached its instance once (swallowed there), and no connection at all went
    // to the other instance: no replay, nor an attempt at one.
    assert_eq!(t.proxies[home].swallowed(), 1, "the PutFile was sent once");
    assert_eq!(
        t.proxies[other].accepted(),
        other_before,
        "nothing went elsewhere"
    );
    assert_eq!(
        seen(s, |r| r.header("x-wopi-override") == Some("PUT")),
        [0, 0]
    );
    let after = s.tree.get_by(STORAGE, &opaque).unwrap().content;
    assert_eq!(
        format!("{before:?}"),
        format!("{after:?}"),
        "nothing stored"
    );
    // Lock changes are not replayed either.
    let (st, _, _) = wopi(&o, "POST", "", Some("UNLOCK"), b"").await;
    assert!(st == 502 || st == 503, "{st}");
    assert_eq!(t.proxies[home].swallowed(), 2, "the Unlock was sent once");
    assert_eq!(
        t.proxies[other].accepted(),
        other_before,
        "nothing went elsewhere"
    );
    assert_eq!(seen(s, |r| r.header("x-wopi-override").is_some()), [0, 0]);
    drop(t.gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_whose_instance_dies_mid_call_is_served_by_the_next() {
    let t = two(NO_HEALTH, "").await;
    let s = &t.stack;
    let homes = homes(s).await;
    let (opaque, home) = homes[0].clone();
    for f in fakes(s) {
        f.clear_requests();
    }
    // The file's instance is killed with the open's `openinapp` on its way in: nothing was
    // decided there (it only issues a token), so the next instance is asked.
    let kill = t.proxies[home].kill_mid_request(Duration::from_secs(10));
    let (caught, opened) = tokio::join!(kill, async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        crate::open_as_alice(s, &opaque).await
    });
    assert!(caught, "the openinapp was caught in flight");
    assert_eq!(opened.0, 200, "{}", opened.1);
    let other = 1 - home;
    assert_eq!(
        seen(s, opened_here(&opaque))[other],
        1,
        "served by the next instance"
    );
    drop(t.gw);
}

async fn readyz(s: &Stack) -> serde_json::Value {
    client()
        .get(format!("{}/readyz", s.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_takes_an_instance_out_and_a_passing_one_brings_it_back() {
    let t = two(FAST_HEALTH, "").await;
    let s = &t.stack;
    let homes = homes(s).await;
    let (opaque, home) = homes.iter().find(|h| h.1 == 0).unwrap().clone();
    let o = open(s, &opaque).await;
    assert!(fakes(s)[0].health_probes() > 0, "instances are probed");

    // Instance 0 loses REVA: its page says `Health status: <span …>FAIL</span>.` (the real
    // markup, which a prefix check read as OK) and after one failed check it is out of rotation.
    fakes(s)[0].set_storage_unreachable(true);
    let r = eventually(
        "instance 0 reported unhealthy",
        Duration::from_secs(10),
        async || {
            let r = readyz(s).await;
            (r["wopiserver_instances"][0]["healthy"] == false).then_some(r)
        },
    )
    .await;
    assert_eq!(r["wopiserver_instances"][0]["name"], "wopi-0");
    assert_eq!(r["wopiserver_instances"][1]["healthy"], true, "{r}");
    assert_eq!(r["ready"], true, "one healthy instance is enough: {r}");
    let healthy = crate::gauge(
        &s.admin_url(),
        "wopigate_wopiserver_instance_healthy{wopiserver=\"wopi-0\"}",
    )
    .await;
    assert_eq!(healthy, Some(0.0));
    for f in fakes(s) {
        f.clear_requests();
    }
    assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
    assert_eq!(
        seen(s, wopi_calls),
        [0, 1],
        "served by the healthy instance"
    );

    // Both failing: still forwarded to the file's instance (never turned away for a probe),
    // which answers as the wopiserver does without its storage; and not ready.
    fakes(s)[1].set_storage_unreachable(true);
    eventually(
        "both reported unhealthy",
        Duration::from_secs(10),
        async || {
            let r = readyz(s).await;
            (r["wopiserver_instances"][1]["healthy"] == false).then_some(())
        },
    )
    .await;
    let r = readyz(s).await;
    assert_eq!(r["ready"], false, "{r}");
    assert_eq!(
        r["wopiserver_instances"][0]["detail"], "reports Health status: FAIL",
        "{r}"
    );
    for f in fakes(s) {
        f.clear_requests();
    }
    // (v11.5.0's CheckFileInfo calls every storage failure "File not found".)
    assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 404);
    assert_eq!(
        seen(s, wopi_calls),
        [1, 0],
        "forwarded to the file's instance"
    );

    // Passing again: the file's traffic returns to its instance.
    fakes(s)[0].set_storage_unreachable(false);
    fakes(s)[1].set_storage_unreachable(false);
    eventually("instance 0 back", Duration::from_secs(10), async || {
        let r = readyz(s).await;
        (r["wopiserver_instances"][0]["healthy"] == true && r["ready"] == true).then_some(())
    })
    .await;
    for f in fakes(s) {
        f.clear_requests();
    }
    assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
    let mut want = [0, 0];
    want[home] = 1;
    assert_eq!(seen(s, wopi_calls), want);
    drop(t.gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_at_its_cap_answers_503_with_retry_after_and_loses_nothing() {
    let stack = Stack::start(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let proxy = FaultProxy::start(stack.wopi_server.addr).await.unwrap();
    let text = stack
        .config_toml()
        .replace(&stack.wopi_server.url(), &proxy.url())
        .replace(
            "timeout_ms = 3000\n",
            "timeout_ms = 3000\nmax_in_flight = 1\nqueue = 1\nqueue_timeout_ms = 300\n",
        );
    let config = stack.dir().join("cap.toml");
    std::fs::write(&config, text).unwrap();
    let _gw = start_gateway(&stack, &config).await;
    let o = open(&stack, "file-docx").await;
    let want = match stack.tree.get_by(STORAGE, "file-docx").unwrap().content {
        wopigate_testkit::tree::Content::Bytes(b) => b,
        other => panic!("{other:?}"),
    };
    // Under the cap: nothing waits.
    assert_eq!(wopi(&o, "GET", "/contents", None, b"").await.0, 200);

    // One slow download holds the only slot for ~1.5 s.
    proxy.set(Fault::Slow(Duration::from_millis(1500))).await;
    let slow = tokio::spawn({
        let o = Opened {
            url: o.url.clone(),
            token: o.token.clone(),
        };
        async move { wopi(&o, "GET", "/contents", None, b"").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next waits in the queue (300 ms), then is turned away; with the queue full the one
    // after is turned away at once.
    let (a, b) = tokio::join!(wopi(&o, "GET", "", None, b""), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        (wopi(&o, "GET", "", None, b"").await, started.elapsed())
    });
    for (st, headers, body) in [&a, &b.0] {
        assert_eq!(*st, 503, "{}", String::from_utf8_lossy(body));
        assert_eq!(headers.get("retry-after").unwrap(), "1");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["code"], "busy");
    }
    assert!(
        b.1 < Duration::from_millis(250),
        "refused at once: {:?}",
        b.1
    );
    // The download holding the slot completes, whole.
    let (st, _, body) = slow.await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(body, want);
    proxy.set(Fault::None).await;
    assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
    let busy = crate::gauge(
        &stack.admin_url(),
        "wopigate_wopiserver_instance_busy_total{wopiserver=\"default\"}",
    )
    .await;
    assert_eq!(busy, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_over_a_rate_limit_get_429_with_retry_after() {
    let stack = Stack::start(StackOptions {
        extra_config:
            "[rate_limits]\nwindow_seconds = 60\nopen_per_user = 2\nopen_per_client = 4\n".into(),
        ..Default::default()
    })
    .await;
    let config = stack.write_config();
    let _gw = start_gateway(&stack, &config).await;
    let id = wopigate::ids::encode_legacy(STORAGE, "file-docx");
    let open_as = async |user: &str| {
        let resp = client()
            .get(format!(
                "{}/api/v0/wopi/open?fileId={}",
                stack.gateway_url(),
                crate::enc(&id)
            ))
            .bearer_auth(stack.idp.token(user))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        let body: serde_json::Value = resp.json().await.unwrap();
        (status, retry, body)
    };
    let o = open(&stack, "file-docx").await;
    let (st, _, body) = open_as("alice").await;
    assert_eq!(st, 200, "{body}");
    // alice's third open in the window: her limit.
    let (st, retry, body) = open_as("alice").await;
    assert_eq!(
        (st, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "{retry:?}");
    // bob is under his own limit; the client address has now made 4 opens (refused ones
    // count: a client hammering stays limited), its limit.
    let (st, _, body) = open_as("bob").await;
    assert_eq!(st, 200, "{body}");
    let (st, retry, _) = open_as("bob").await;
    assert_eq!(st, 429);
    assert!(retry.is_some());
    // WOPI traffic from office apps is not limited unless configured.
    for _ in 0..30 {
        assert_eq!(wopi(&o, "GET", "", None, b"").await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrapper_has_per_user_and_per_client_limits() {
    let stack = Stack::start(StackOptions {
        extra_config: "[mobile]\nenabled = true\n\n[rate_limits]\nbootstrap_per_user = 2\nbootstrap_per_client = 3\n".into(),
        ..Default::default()
    })
    .await;
    let config = stack.write_config();
    let _gw = start_gateway(&stack, &config).await;
    let boot = async |user: &str| {
        let r = client()
            .get(format!("{}/wopibootstrapper", stack.gateway_url()))
            .bearer_auth(stack.idp.token(user))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.headers().get("retry-after").is_some(),
        )
    };
    assert_eq!(boot("alice").await, (200, false));
    assert_eq!(boot("alice").await, (200, false));
    assert_eq!(boot("alice").await, (429, true), "alice's limit");
    // bob's own limit is untouched, but the client address is now at 3 (refused ones count).
    assert_eq!(boot("bob").await, (429, true), "the client's limit");
    let limited = crate::gauge(
        &stack.admin_url(),
        "wopigate_rate_limited_total{by=\"user\",scope=\"bootstrap\"}",
    )
    .await;
    assert_eq!(limited, Some(1.0));
}
