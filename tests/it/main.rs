//! Integration tests: the real `wopigate` binary on 127.0.0.1 in front of the testkit doubles.

mod attacks;
mod check;
mod control;
mod demo_browser;
mod discovery;
mod errors;
mod fault_matrix;
mod faults;
mod footprint;
mod forwarded;
mod framing;
mod hygiene;
mod instances;
mod iop;
mod logout;
mod mobile;
mod oidc_keys;
mod open_flow;
mod ops;
mod real_idp;
mod reload;
mod replicas;
mod save_as;
mod shared_store;
mod slow_clients;
mod soak;
mod wopi_edge;
mod wopi_proxy;
mod wopiserver_truths;
mod wrapped;

use std::path::PathBuf;
use std::time::Duration;

use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{Stack, StackOptions};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wopigate"))
}

pub fn client() -> reqwest::Client {
    wopigate::http_client::client(Duration::from_secs(5), Duration::from_secs(60))
        .expect("an HTTP client")
}

/// A WOPI GET of `url` with `token` as its `access_token`.
pub async fn wopi_get(url: &str, token: &str) -> reqwest::Response {
    client()
        .get(url)
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap()
}

/// Starts the doubles and a gateway in front of them, and waits (bounded) until the gateway
/// holds the IdP keys: on a loaded CI machine the 5 s start-up warm-up can run out first.
pub async fn start(opts: StackOptions) -> (Stack, GatewayProcess) {
    let stack = Stack::start(opts).await;
    let config = stack.write_config();
    let gw = start_gateway(&stack, &config).await;
    (stack, gw)
}

/// Starts a gateway on `config` in front of `stack` and waits (bounded) for the IdP keys; a
/// gateway that never gets there fails the test with its log.
pub async fn start_gateway(stack: &Stack, config: &std::path::Path) -> GatewayProcess {
    let gw = GatewayProcess::start(&bin(), config, stack.listen_port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Watch the key-count gauge rather than /readyz: readiness probes would open connections
    // to REVA and the wopiserver that tests stopping those doubles do not expect.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not load the IdP keys within 20 s:\n{}",
            gw.logs()
        );
        let keys = gauge(&stack.admin_url(), "wopigate_jwks_keys").await;
        if keys.is_some_and(|k| k >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw
}

/// The value of an unlabelled metric on the admin listener's `/metrics` at `admin`.
pub async fn gauge(admin: &str, name: &str) -> Option<f64> {
    let text = client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// Polls `probe` until it yields a value, for at most `limit`; the failure names `what`.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Query-string value encoding for test URLs.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The access token and app URL from a legacy open of `file_id`.
pub async fn legacy_open(stack: &Stack, token: &str, file_id: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .get(format!(
            "{}/api/v0/wopi/open?fileId={}",
            stack.gateway_url(),
            enc(file_id)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp
        .json::<serde_json::Value>()
        .await
        .unwrap_or(serde_json::Value::Null);
    if let Some(t) = body["accesstoken"].as_str() {
        wopigate_testkit::hygiene::register_handed_out("access token from an open", t);
    }
    (status, body)
}

/// A JWT-shaped WOPI token with `exp` and a signature nobody can verify.
pub fn unsigned_wopi_token(exp: u64) -> String {
    use base64::Engine;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#.into()),
        b64(format!(
            r#"{{"exp":{exp},"appname":"Collabora","userid":"x"}}"#
        )),
        b64("not-a-signature".into())
    )
}

/// A legacy open of the seeded file `opaque_id` as alice.
pub async fn open_as_alice(stack: &Stack, opaque_id: &str) -> (u16, serde_json::Value) {
    let id = wopigate::ids::encode_legacy(wopigate_testkit::stack::STORAGE, opaque_id);
    legacy_open(stack, &stack.idp.token("alice"), &id).await
}

/// A file opened through the gateway: its WOPI URL (no query) and access token.
#[derive(Clone)]
pub struct WopiFile {
    pub url: String,
    pub token: String,
}

/// Opens the seeded file `opaque_id` as alice (legacy open API); 200 or the test fails.
pub async fn open_wopi_file(stack: &Stack, opaque_id: &str) -> WopiFile {
    let (status, body) = open_as_alice(stack, opaque_id).await;
    assert_eq!(status, 200, "{body}");
    WopiFile {
        url: format!(
            "{}{}",
            stack.gateway_url(),
            wopi_src_path(body["wopiclienturl"].as_str().unwrap())
        ),
        token: body["accesstoken"].as_str().unwrap().to_owned(),
    }
}

/// Adds a copy of `report.docx` to alice's home as `name`, with id `opaque_id`.
pub fn add_docx(stack: &Stack, opaque_id: &str, name: &str) {
    let mut e = stack
        .tree
        .get_by(wopigate_testkit::stack::STORAGE, "file-docx")
        .unwrap();
    e.id.opaque_id = opaque_id.into();
    e.name = name.into();
    e.path = format!("/home/{name}");
    stack.tree.insert(e);
}

/// `POST /app/open` of `file_id` as alice, with `app` (and `view_mode` when given): the file
/// opened (200 or the test fails) and the whole answer.
pub async fn app_open(
    stack: &Stack,
    file_id: &str,
    app: &str,
    view_mode: Option<&str>,
) -> (WopiFile, serde_json::Value) {
    let mut url = format!(
        "{}/app/open?file_id={}&app_name={}",
        stack.gateway_url(),
        enc(file_id),
        enc(app)
    );
    if let Some(m) = view_mode {
        url.push_str(&format!("&view_mode={}", enc(m)));
    }
    let r = client()
        .post(url)
        .bearer_auth(stack.idp.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let file = WopiFile {
        url: format!(
            "{}{}",
            stack.gateway_url(),
            wopi_src_path(body["app_url"].as_str().unwrap())
        ),
        token: body["form_parameters"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    (file, body)
}

/// CheckFileInfo of `f`: status and JSON (`Null` when it is not JSON).
pub async fn check_file_info(f: &WopiFile) -> (u16, serde_json::Value) {
    let r = client()
        .get(&f.url)
        .query(&[("access_token", f.token.as_str())])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A token for alice's `report.docx` (`file-docx`) signed with the stack's wopiserver secret,
/// as the wopiserver issues them, carrying `reva_token` and naming `appname`.
pub fn wopiserver_token_for_report(stack: &Stack, reva_token: String, appname: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = wopigate_testkit::fake_wopiserver::WopiClaims {
        userid: reva_token,
        wopiuser: "alice-sub!alice-sub@idp".into(),
        usertype: "regular".into(),
        filename: "/home/report.docx".into(),
        fileid: "file-docx".into(),
        username: "Alice".into(),
        viewmode: "VIEW_MODE_READ_WRITE".into(),
        folderurl: "/".into(),
        endpoint: wopigate_testkit::stack::STORAGE.into(),
        appname: appname.into(),
        appediturl: String::new(),
        appviewurl: String::new(),
        trace: "t".into(),
        exp: now + 3600,
        iss: "cs3org:wopiserver:fake".into(),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(stack.wopi_secret.as_bytes()),
    )
    .unwrap()
}

/// The PutFile requests of the seeded-storage file `opaque_id` the wopiserver received.
pub fn puts_to(stack: &Stack, opaque_id: &str) -> Vec<wopigate_testkit::fake_wopiserver::Recorded> {
    let inode = wopigate::ids::inode_of(&wopigate::ids::Resource {
        storage_id: wopigate_testkit::stack::STORAGE.into(),
        space_id: String::new(),
        opaque_id: opaque_id.into(),
    });
    let path = format!("/wopi/files/{inode}/contents");
    stack
        .wopiserver
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// The root container's URL (with its token) from the bootstrapper, signed in as alice.
pub async fn root_container_url(stack: &Stack) -> String {
    let r = client()
        .post(format!("{}/wopibootstrapper", stack.gateway_url()))
        .bearer_auth(stack.idp.token("alice"))
        .header("X-WOPI-EcosystemOperation", "GET_ROOT_CONTAINER")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    b["RootContainerInfo"]["ContainerPointer"]["Url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The WOPISrc path (`/wopi/files/<id>`) inside an app URL.
pub fn wopi_src_path(app_url: &str) -> String {
    let url = url::Url::parse(app_url).unwrap();
    let src = url
        .query_pairs()
        .find(|(k, _)| k == "WOPISrc")
        .map(|(_, v)| v.into_owned())
        .expect("WOPISrc");
    url::Url::parse(&src).unwrap().path().to_owned()
}
