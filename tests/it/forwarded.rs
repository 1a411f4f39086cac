//! The real client behind a load balancer (`server.trusted_proxies`): from a trusted peer the
//! forwarded chain names the client (rightmost untrusted hop) and is appended to on the way up;
//! from any other peer, forwarded headers change nothing. The internal listener's allow list
//! keeps using the peer unless `internal.allow_forwarded` says otherwise.

use wopigate_testkit::stack::{Stack, StackOptions};

use crate::{client, open_as_alice, start, wopi_src_path};

/// A CheckFileInfo with `headers`; what the wopiserver saw as (XFF, X-Real-IP, Forwarded).
async fn seen_upstream(
    stack: &Stack,
    headers: &[(&str, &str)],
) -> (Option<String>, Option<String>, Option<String>) {
    let (status, body) = open_as_alice(stack, "file-docx").await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    stack.wopiserver.clear_requests();
    let mut req = client()
        .get(format!("{}{path}", stack.gateway_url()))
        .query(&[("access_token", body["accesstoken"].as_str().unwrap())]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let seen = stack.wopiserver.requests();
    let r = seen.last().expect("the wopiserver saw the call");
    let h = |n: &str| r.header(n).map(str::to_owned);
    (h("x-forwarded-for"), h("x-real-ip"), h("forwarded"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_from_an_untrusted_peer_changes_nothing() {
    let (stack, gw) = start(StackOptions::default()).await;
    let spoof = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=198.51.100.1"),
        ("X-Real-IP", "192.0.2.1"),
    ];
    let (xff, real, fwd) = seen_upstream(&stack, &spoof).await;
    assert_eq!(xff.as_deref(), Some("127.0.0.1"));
    assert_eq!(real.as_deref(), Some("127.0.0.1"));
    assert_eq!(fwd, None);
    let log = gw.logs_with("CheckFileInfo", 1).await;
    assert!(
        !log.contains("203.0.113.9") && !log.contains("198.51.100.1"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let (stack, gw) = start(StackOptions {
        server_extra: "trusted_proxies = [\"127.0.0.0/8\"]\n".into(),
        ..Default::default()
    })
    .await;
    // A client prepended a hop of its own; the load balancer added the real one.
    let (xff, real, fwd) =
        seen_upstream(&stack, &[("X-Forwarded-For", "6.6.6.6, 203.0.113.9")]).await;
    assert_eq!(
        real.as_deref(),
        Some("203.0.113.9"),
        "rightmost untrusted hop"
    );
    assert_eq!(
        xff.as_deref(),
        Some("6.6.6.6, 203.0.113.9, 127.0.0.1"),
        "appended to"
    );
    assert_eq!(fwd, None);
    // The access log names the client (its field, not the raw header, which is never logged).
    let log = gw.logs_with("203.0.113.9", 1).await;
    assert!(!log.contains("6.6.6.6"), "{log}");
    // RFC 7239 wins over X-Forwarded-For and is appended to as well.
    let (_, real, fwd) = seen_upstream(
        &stack,
        &[
            ("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https"),
            ("X-Forwarded-For", "192.0.2.99"),
        ],
    )
    .await;
    assert_eq!(real.as_deref(), Some("2001:db8::7"));
    assert_eq!(
        fwd.as_deref(),
        Some("for=\"[2001:db8::7]:4711\";proto=https, for=127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_allow_list_uses_the_peer_unless_told_otherwise() {
    let internal_port = wopigate_testkit::free_port();
    let internal = |allow_forwarded: bool| {
        format!(
            "[internal]\nlisten = \"127.0.0.1:{internal_port}\"\nallow = [\"10.0.0.0/8\"]\nallow_forwarded = {allow_forwarded}\n"
        )
    };
    let status = async |allow_forwarded: bool| {
        let (stack, _gw) = start(StackOptions {
            server_extra: "trusted_proxies = [\"127.0.0.0/8\"]\n".into(),
            extra_config: internal(allow_forwarded),
            ..Default::default()
        })
        .await;
        let r = client()
            .get(format!(
                "http://127.0.0.1:{internal_port}/wopi/cbox/endpoints"
            ))
            .header("X-Forwarded-For", "10.1.2.3")
            .send()
            .await
            .unwrap();
        drop(stack);
        r.status().as_u16()
    };
    // The peer (loopback) is not in 10/8: refused, whatever the forwarded chain says.
    assert_eq!(status(false).await, 403);
    // Told to believe the trusted proxy's chain: the client 10.1.2.3 is allowed.
    assert_eq!(status(true).await, 200);
}
