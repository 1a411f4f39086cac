//! The internal listener: legacy `/wopi/iop/open` with the REVA secret as bearer, bearer
//! rewriting for other IOP calls, the CIDR allow-list, `/wopi/cbox/endpoints`, pass-through.

use std::time::Duration;

use wopigate_testkit::free_port;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{Stack, StackOptions};

use crate::{bin, client, start};

fn internal_config(port: u16, allow: &str, mode: &str) -> String {
    format!(
        "[internal]\nlisten = \"127.0.0.1:{port}\"\nallow = [{allow}]\nlegacy_open = \"{mode}\"\n"
    )
}

fn assert_never_saw(stack: &Stack, secret: &str) {
    for r in stack.wopiserver.requests() {
        assert!(
            !r.haystack().contains(secret),
            "the wopiserver saw a secret: {} {}",
            r.method,
            r.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_open_is_translated_and_the_reva_secret_never_leaves() {
    let port = free_port();
    let (stack, _gw) = start(StackOptions {
        extra_config: internal_config(port, "\"127.0.0.1/32\"", "translate"),
        ..Default::default()
    })
    .await;
    let internal = format!("http://127.0.0.1:{port}");
    let token =
        stack.reva_token_for_alice(Duration::from_secs(600), wopigate_testkit::test_idp::now());
    let c = client();
    let legacy = |bearer: String, query: &'static str| {
        c.get(format!("{internal}/wopi/iop/open?{query}"))
            .header("Authorization", format!("Bearer {bearer}"))
            .header("TokenHeader", &token)
            .send()
    };
    for (bearer, query) in [
        (
            stack.reva_secret.clone(),
            "filename=file-docx&endpoint=storage-1&viewmode=VIEW_MODE_READ_WRITE&username=Alice&folderurl=%2Fhome",
        ),
        (
            stack.iop_secret.clone(),
            "filename=%252Fhome%252Freport.docx&canedit=false",
        ),
    ] {
        let r = legacy(bearer, query).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let body = r.text().await.unwrap();
        let (src, access) = body
            .split_once("&access_token=")
            .expect("legacy text shape");
        let src = percent_encoding::percent_decode_str(src)
            .decode_utf8()
            .unwrap()
            .into_owned();
        assert_eq!(
            src,
            format!("{}/wopi/files/storage-1!ZmlsZS1kb2N4", stack.gateway_url())
        );
        let claims = stack.wopiserver.verify(access).expect("a wopiserver token");
        assert_eq!(claims.userid, token);
    }
    let opens: Vec<_> = stack
        .wopiserver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/wopi/iop/openinapp")
        .collect();
    assert_eq!(opens.len(), 2);
    for o in &opens {
        assert_eq!(
            o.header("authorization"),
            Some(format!("Bearer {}", stack.iop_secret).as_str())
        );
    }
    assert!(opens[1].query.contains("viewmode=VIEW_MODE_READ_ONLY"));

    // Wrong bearer, or none: 401, nothing forwarded.
    stack.wopiserver.clear_requests();
    let r = legacy(
        "wrong".into(),
        "filename=file-docx&endpoint=storage-1&viewmode=VIEW_MODE_READ_WRITE",
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (401, "Client not authorized".into())
    );
    assert!(stack.wopiserver.requests().is_empty());

    // Other IOP calls are proxied with the bearer rewritten.
    let r = c
        .get(format!("{internal}/wopi/iop/list"))
        .header("Authorization", format!("Bearer {}", stack.reva_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "the fake has no /wopi/iop/list; its answer passes through"
    );
    let seen = stack.wopiserver.requests().pop().expect("forwarded");
    assert_eq!(seen.path, "/wopi/iop/list");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", stack.iop_secret).as_str())
    );

    // /wopi/cbox/endpoints from discovery; unknown paths 404.
    let r = c
        .get(format!("{internal}/wopi/cbox/endpoints"))
        .send()
        .await
        .unwrap();
    let map: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        map[".odt"]["edit"],
        "http://collabora.test/browser/4f3a2b1/cool.html?"
    );
    assert_eq!(
        map[".docx"]["new"],
        "http://collabora.test/browser/4f3a2b1/cool.html?"
    );
    assert_eq!(
        c.get(format!("{internal}/wopi/files/x"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // The public listener never serves any of it.
    let r = c
        .get(format!(
            "{}/wopi/iop/open?filename=file-docx",
            stack.gateway_url()
        ))
        .header("Authorization", format!("Bearer {}", stack.reva_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_never_saw(&stack, &stack.reva_secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_and_passthrough() {
    let stack = Stack::start(StackOptions::default()).await;
    let base = stack.config_toml();
    // Loopback is not in the allow-list: 403 before anything else.
    let port = free_port();
    let path = stack.dir().join("deny.toml");
    std::fs::write(
        &path,
        format!(
            "{base}\n{}",
            internal_config(port, "\"10.0.0.0/8\"", "translate")
        ),
    )
    .unwrap();
    let gw = GatewayProcess::start(&bin(), &path, stack.listen_port)
        .await
        .unwrap();
    let r = client()
        .get(format!("http://127.0.0.1:{port}/wopi/iop/open"))
        .header("Authorization", format!("Bearer {}", stack.iop_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    drop(gw);

    // Pass-through to an old wopiserver that still has /wopi/iop/open: forwarded as is, bearer
    // rewritten.
    let port = free_port();
    let path = stack.dir().join("pass.toml");
    std::fs::write(
        &path,
        format!(
            "{base}\n{}",
            internal_config(port, "\"127.0.0.1/32\"", "passthrough")
        ),
    )
    .unwrap();
    let _gw = GatewayProcess::start(&bin(), &path, stack.listen_port)
        .await
        .unwrap();
    stack.wopiserver.clear_requests();
    let r = client()
        .get(format!(
            "http://127.0.0.1:{port}/wopi/iop/open?filename=x&viewmode=VIEW_MODE_READ_ONLY"
        ))
        .header("Authorization", format!("Bearer {}", stack.reva_secret))
        .header("TokenHeader", "reva-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the fake (v11) has no /wopi/iop/open");
    let seen = stack.wopiserver.requests().pop().expect("forwarded");
    assert_eq!(seen.path, "/wopi/iop/open");
    assert_eq!(seen.query, "filename=x&viewmode=VIEW_MODE_READ_ONLY");
    assert_eq!(seen.header("tokenheader"), Some("reva-token"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", stack.iop_secret).as_str())
    );
    assert_never_saw(&stack, &stack.reva_secret);
}
