//! The open flow end to end: OIDC token → REVA token → Stat → discovery → openinapp.

use std::time::{SystemTime, UNIX_EPOCH};

use wopigate::config::ExchangeMode;
use wopigate::ids::encode_legacy;
use wopigate_testkit::fake_wopiserver::WopiClaims;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::{client, enc, legacy_open, start, wopi_src_path};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Asserts what REVA and the wopiserver saw for one open; returns the REVA token used.
fn assert_upstreams_saw_one_open(stack: &Stack, oidc_token: &str) -> String {
    let stats: Vec<_> = stack
        .reva
        .calls()
        .into_iter()
        .filter(|c| c.method == "Stat")
        .collect();
    // The gateway's Stat, then the wopiserver's own (`generateAccessToken`) with the REVA token
    // the gateway handed it.
    assert_eq!(stats.len(), 2, "the gateway's Stat and the wopiserver's");
    assert_eq!(stats[0].token, stats[1].token, "one REVA token for both");
    let stat = &stats[0];
    let claims = stat
        .claims
        .clone()
        .expect("Stat carried a token REVA accepts");
    assert_eq!(claims.aud, serde_json::json!("reva"));
    assert_eq!(claims.iss, stack.idp.issuer());
    assert_eq!(claims.user.id.idp, stack.idp.issuer());
    assert_eq!(claims.user.id.opaque_id, "alice-sub");
    assert_eq!(claims.user.id.user_type, 1);
    assert_eq!(claims.user.username, "alice");
    assert_eq!(claims.user.display_name, "Alice Example");
    assert_eq!(claims.scope["user"].role, 1, "owner scope");
    let reva_token = stat.token.clone().unwrap();

    let opens: Vec<_> = stack
        .wopiserver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/wopi/iop/openinapp")
        .collect();
    assert_eq!(opens.len(), 1, "one openinapp");
    let o = &opens[0];
    assert_eq!(
        o.header("authorization"),
        Some(format!("Bearer {}", stack.iop_secret).as_str())
    );
    assert_eq!(o.header("tokenheader"), Some(reva_token.as_str()));
    assert!(o.header("x-trace-id").is_some_and(|t| !t.is_empty()));
    for r in stack.wopiserver.requests() {
        let hay = r.haystack();
        assert!(
            !hay.contains(&stack.reva_secret),
            "REVA secret reached the wopiserver"
        );
        assert!(
            !hay.contains(oidc_token),
            "OIDC token reached the wopiserver"
        );
    }
    reva_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_open_mints_a_reva_token_and_returns_the_app_url() {
    // Unwrapped: the office app gets the wopiserver's own token (tokens.wrap_tokens = false).
    let (stack, gw) = start(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let token = stack.idp.token("alice");
    let (status, body) = legacy_open(&stack, &token, &encode_legacy(STORAGE, "file-odt")).await;
    assert_eq!(status, 200, "{body}");
    let app_url = body["wopiclienturl"].as_str().unwrap();
    // Collabora's edit URL from discovery, then the WOPISrc the wopiserver appended.
    assert!(
        app_url.starts_with("http://collabora.test/browser/4f3a2b1/cool.html?&WOPISrc="),
        "{app_url}"
    );
    assert_eq!(wopi_src_path(app_url), "/wopi/files/storage-1!ZmlsZS1vZHQ=");
    let wopi_token = body["accesstoken"].as_str().unwrap();
    let wopi_claims = stack
        .wopiserver
        .verify(wopi_token)
        .expect("a wopiserver token");
    assert_eq!(wopi_claims.viewmode, "VIEW_MODE_READ_WRITE");
    assert_eq!(wopi_claims.appname, "Collabora");
    assert_eq!(
        wopi_claims.appediturl,
        "http://collabora.test/browser/4f3a2b1/cool.html?"
    );
    assert_eq!(wopi_claims.username, "Alice Example");
    assert_eq!(wopi_claims.folderurl, "https://cloud.example/files/home");

    let reva_token = assert_upstreams_saw_one_open(&stack, &token);
    assert_eq!(
        wopi_claims.userid, reva_token,
        "the WOPI token carries the REVA token"
    );
    let reva_claims = stack.reva.verify(&reva_token).unwrap();
    // TTL from config (1800 s), iat backdated 5 s.
    assert_eq!(reva_claims.exp - reva_claims.iat, 1805);
    assert!(reva_claims.exp.abs_diff(now() + 1800) <= 5);
    // min(REVA exp, WOPI exp) in ms: the REVA token (30 min) ends first.
    assert_eq!(
        body["accesstokenttl"].as_u64().unwrap(),
        reva_claims.exp * 1000
    );

    // A second open re-uses the minted token (no new signature for the same user).
    let (status, _) = legacy_open(&stack, &token, "storage-1!file-docx").await;
    assert_eq!(status, 200);
    let tokens: Vec<_> = stack
        .reva
        .calls()
        .into_iter()
        .filter(|c| c.method == "Stat")
        .map(|c| c.token)
        .collect();
    // Two opens, each Stat-ed by the gateway and by the wopiserver, all with one token.
    assert_eq!(tokens.len(), 4);
    assert!(tokens.iter().all(|t| *t == tokens[0]));

    // Nothing secret in the gateway's log, once it holds both opens.
    let logs = gw.logs_with("opened", 2).await;
    assert!(logs.contains("wopigate listening"), "{logs}");
    for secret in [
        stack.reva_secret.as_str(),
        &stack.iop_secret,
        &token,
        &reva_token,
        body["accesstoken"].as_str().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret or token appears in the log"
        );
    }
}

/// The wopiserver token claims of an `/app/open` answer.
fn wopi_claims(stack: &Stack, body: &serde_json::Value) -> WopiClaims {
    let token = body["form_parameters"]["access_token"]
        .as_str()
        .expect("access_token");
    stack.wopiserver.verify(token).expect("a wopiserver token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_open_answers_in_revas_shape_with_the_chosen_app_and_mode() {
    let (stack, _gw) = start(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let token = stack.idp.token("alice");
    let open = |query: String| {
        let c = client();
        let url = format!("{}/app/open?{query}", stack.gateway_url());
        let token = token.clone();
        async move {
            let r = c.post(url).bearer_auth(token).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = open(format!(
        "file_id={}&app_name={}",
        enc("storage-1!file-docx"),
        enc("Microsoft Office Online")
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "POST");
    let app_url = body["app_url"].as_str().unwrap();
    assert!(
        app_url.starts_with("https://word-edit.example.net/we/wordeditorframe.aspx?&WOPISrc="),
        "{app_url}"
    );
    let access_token = body["form_parameters"]["access_token"].as_str().unwrap();
    let claims = stack.wopiserver.verify(access_token).unwrap();
    assert_eq!(claims.appname, "Microsoft Office Online");
    let ttl: u64 = body["form_parameters"]["access_token_ttl"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ttl, stack.reva.verify(&claims.userid).unwrap().exp * 1000);
    assert_upstreams_saw_one_open(&stack, &token);

    // Requested read mode → READ_ONLY with the view URL.
    let (status, body) = open(format!(
        "file_id={}&app_name={}&view_mode=read",
        enc("storage-1!file-docx"),
        enc("Microsoft Office Online")
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        body["app_url"]
            .as_str()
            .unwrap()
            .starts_with("https://word-view.example.net/wv/wordviewerframe.aspx?&WOPISrc=")
    );
    let claims = wopi_claims(&stack, &body);
    assert_eq!(claims.viewmode, "VIEW_MODE_READ_ONLY");

    // A read-only user asking for write gets READ_ONLY.
    let (status, body) = open(format!(
        "file_id={}&view_mode=write&app_name={}",
        enc("storage-1!file-ro"),
        enc("Microsoft Office Online")
    ))
    .await;
    assert_eq!(status, 200);
    let claims = wopi_claims(&stack, &body);
    assert_eq!(claims.viewmode, "VIEW_MODE_READ_ONLY");

    // An empty file opens with `editnew`.
    let (status, body) = open(format!(
        "file_id={}&app_name={}",
        enc("storage-1!file-new"),
        enc("Microsoft Office Online")
    ))
    .await;
    assert_eq!(status, 200);
    let claims = wopi_claims(&stack, &body);
    assert_eq!(
        claims.appediturl,
        "https://word-edit.example.net/we/wordeditorframe.aspx?new=1&"
    );

    // Form-encoded body parameters work like query parameters.
    let r = client()
        .post(format!("{}/app/open", stack.gateway_url()))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("file_id=storage-1%21file-odt&view_mode=write")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_mode_needs_no_reva_secret() {
    let (stack, gw) = start(StackOptions {
        mode: ExchangeMode::Authenticate,
        ..Default::default()
    })
    .await;
    assert!(!stack.config_toml().contains("jwt_secret_file"));
    let token = stack.idp.token("alice");
    let (status, body) = legacy_open(&stack, &token, &encode_legacy(STORAGE, "file-docx")).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let auths: Vec<_> = stack
        .reva
        .calls()
        .into_iter()
        .filter(|c| c.method == "Authenticate")
        .collect();
    assert_eq!(auths.len(), 1);
    assert_eq!(
        auths[0].authenticate.as_ref().unwrap(),
        &("bearer".to_owned(), token.clone())
    );
    let reva_token = assert_upstreams_saw_one_open(&stack, &token);
    let claims = stack.reva.verify(&reva_token).unwrap();
    let wopi = stack
        .wopiserver
        .verify(body["accesstoken"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        body["accesstokenttl"].as_u64().unwrap(),
        claims.exp.min(wopi.exp) * 1000
    );

    // A second open re-uses REVA's token instead of authenticating again.
    let (status, _) = legacy_open(&stack, &token, "storage-1!file-odt").await;
    assert_eq!(status, 200);
    assert_eq!(
        stack
            .reva
            .calls()
            .iter()
            .filter(|c| c.method == "Authenticate")
            .count(),
        1
    );
}
