//! Discovery lifecycle through the running gateway: `/app/list`, per-extension preference, warm
//! cache through an outage and recovery, a cold start with one app down, and a legacy
//! wopiserver's `/wopi/cbox/endpoints` as a source.

use std::time::Duration;

use wopigate_testkit::fake_office::{COLLABORA_DISCOVERY, FakeOffice};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::localhost;
use wopigate_testkit::stack::{Stack, StackOptions};

use crate::{bin, client, enc, open_as_alice, start};

async fn app_list(stack: &Stack) -> serde_json::Value {
    let r = client()
        .get(format!("{}/app/list", stack.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn entry<'a>(list: &'a serde_json::Value, ext: &str) -> Option<&'a serde_json::Value> {
    list["mime-types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ext"] == ext)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_list_and_preferences_follow_discovery() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let list = app_list(&stack).await;
    let docx = entry(&list, "docx").expect("docx listed");
    assert_eq!(
        docx["mime_type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert_eq!(docx["default_application"], "Collabora");
    let providers = docx["app_providers"].as_array().unwrap();
    assert_eq!(providers.len(), 2);
    assert_eq!(providers[0]["name"], "Collabora");
    assert_eq!(providers[0]["modes"], serde_json::json!(["view", "edit"]));
    assert_eq!(providers[1]["name"], "Microsoft Office Online");
    assert_eq!(
        providers[1]["modes"],
        serde_json::json!(["view", "edit", "new"])
    );
    assert_eq!(
        providers[1]["icon"],
        "https://word-view.example.net/wv/s/FavIcon_Word.ico"
    );
    assert!(entry(&list, "xyz").is_none());
    let xlsx = entry(&list, "xlsx").unwrap();
    assert_eq!(xlsx["app_providers"].as_array().unwrap().len(), 2);
    drop(_gw);

    // A per-extension preference changes the default app, for the listing and the open API.
    let (stack, _gw) = start(StackOptions {
        extra_config: "[open.app_preference]\n\".docx\" = [\"Microsoft Office Online\"]\n".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        entry(&app_list(&stack).await, "docx").unwrap()["default_application"],
        "Microsoft Office Online"
    );
    let (s, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(s, 200);
    assert!(
        body["wopiclienturl"]
            .as_str()
            .unwrap()
            .starts_with("https://word-edit.example.net/")
    );
    // .odt has no preference: still the configured order.
    let (_, body) = open_as_alice(&stack, "file-odt").await;
    assert!(
        body["wopiclienturl"]
            .as_str()
            .unwrap()
            .starts_with("http://collabora.test/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_recovery_and_cold_start_per_app() {
    // Collabora refreshes every second here.
    let mut stack = Stack::start(StackOptions::default()).await;
    let config = stack.config_toml().replacen(
        "timeout_ms = 2000\nrefetch_min_seconds = 1\n",
        "timeout_ms = 2000\nrefetch_min_seconds = 1\nrefresh_seconds = 1\n",
        1,
    );
    let path = stack.dir().join("refresh.toml");
    std::fs::write(&path, config).unwrap();
    let gw = GatewayProcess::start(&bin(), &path, stack.listen_port)
        .await
        .unwrap();
    let collabora_port = stack.office_servers[0].addr.port();
    stack.office_servers[0].stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Warm cache: still opens with Collabora while it is away.
    let (s, body) = open_as_alice(&stack, "file-odt").await;
    assert_eq!(s, 200, "{body}");
    assert!(entry(&app_list(&stack).await, "odt").is_some());
    // It comes back with a new type: picked up by the background refresh.
    let office = FakeOffice::new(&COLLABORA_DISCOVERY.replace("ext=\"odp\"", "ext=\"odg\""));
    stack.office_servers[0] = office.serve(localhost(collabora_port)).await.unwrap();
    let mut seen = false;
    for _ in 0..40 {
        if entry(&app_list(&stack).await, "odg").is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "recovered discovery not picked up:\n{}", gw.logs());
    drop(gw);

    // Cold start with Collabora down: 503 for Collabora only.
    let mut stack = Stack::start(StackOptions::default()).await;
    stack.office_servers[0].stop().await;
    let _gw = GatewayProcess::start(&bin(), &stack.write_config(), stack.listen_port)
        .await
        .unwrap();
    let open = |app: &'static str| {
        let url = format!(
            "{}/app/open?file_id={}&app_name={}",
            stack.gateway_url(),
            enc("storage-1!file-docx"),
            enc(app)
        );
        let token = stack.idp.token("alice");
        async move {
            client()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(open("Collabora").await, 503);
    assert_eq!(open("Microsoft Office Online").await, 200);
    // Without a named app the next app that opens the type is used.
    let (s, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_cbox_endpoints_as_a_source() {
    let endpoints = FakeOffice::new(
        r#"{".odt": {"view": "http://legacy.test/cool.html?permission=readonly", "edit": "http://legacy.test/cool.html?permission=edit", "new": "http://legacy.test/cool.html?permission=edit"}}"#,
    );
    let server = endpoints.serve(localhost(0)).await.unwrap();
    let (stack, _gw) = start(StackOptions {
        offices: vec![],
        extra_config: format!("[[office]]\nname = \"LegacyCollabora\"\nformat = \"cbox-endpoints\"\ndiscovery_url = \"{}/hosting/discovery\"\n", server.url()),
        ..Default::default()
    })
    .await;
    let (s, body) = open_as_alice(&stack, "file-odt").await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body["wopiclienturl"]
            .as_str()
            .unwrap()
            .starts_with("http://legacy.test/cool.html?permission=edit&WOPISrc=")
    );
    let (s, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (415, Some("unsupported_extension"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_ca_is_the_only_trust_for_discovery() {
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let read = |f: &str| std::fs::read(tls.join(f)).unwrap();
    let office = FakeOffice::new(COLLABORA_DISCOVERY);
    let server = office
        .serve_https(localhost(0), &read("server.pem"), &read("server.key"))
        .await
        .unwrap();
    let stack = Stack::start(StackOptions {
        offices: vec![],
        ..Default::default()
    })
    .await;
    for (ca, expected) in [
        (Some("ca.pem"), 200),
        (Some("other-ca.pem"), 503),
        (None, 503),
    ] {
        let ca_line = ca
            .map(|c| format!("ca_file = {:?}\n", tls.join(c)))
            .unwrap_or_default();
        let config = format!(
            "{}\n[[office]]\nname = \"Collabora\"\ndiscovery_url = \"https://127.0.0.1:{}/hosting/discovery\"\n{ca_line}",
            stack.config_toml(),
            server.addr.port()
        );
        let path = stack.dir().join("tls.toml");
        std::fs::write(&path, config).unwrap();
        let _gw = GatewayProcess::start(&bin(), &path, stack.listen_port)
            .await
            .unwrap();
        let (s, body) = open_as_alice(&stack, "file-odt").await;
        assert_eq!(s, expected, "CA {ca:?}: {body}");
    }
}
