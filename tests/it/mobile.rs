//! Office for iOS/Android: a scripted client replays the operational flows of wopi.md §8 against
//! the gateway, the test IdP's authorization-code flow, fake REVA and the fake wopiserver.

use std::collections::HashMap;

use wopigate::secret::Secret;
use wopigate::tokens::gateway::{Claims, Grant, TokenKeys, url_encoded_len};
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::test_idp::{
    MOBILE_CLIENT_ID, MOBILE_CLIENT_SECRET, MOBILE_REDIRECT_URI, now,
};

use crate::{client, start, wopi_get};

const MOBILE: &str = r#"
[mobile]
enabled = true
provider_id = "TPWOPIGATE"
# Microsoft's discovery publishes proof keys; Office mobile does not sign (wopi.md §8.4).
app = "Microsoft Office Online"
url_schemes = '{"iOS": ["wopigate"], "Android": ["wopigate"]}'
"#;

fn mobile_stack() -> StackOptions {
    StackOptions {
        extra_config: MOBILE.into(),
        ..Default::default()
    }
}

/// `key="value"` pairs of a challenge, parsed leniently (spaces after commas tolerated).
fn challenge_params(header: &str) -> HashMap<String, String> {
    let rest = header.strip_prefix("Bearer ").expect("Bearer scheme");
    let mut out = HashMap::new();
    let mut s = rest;
    while let Some(eq) = s.find("=\"") {
        let key = s[..eq].trim().trim_start_matches(',').trim().to_owned();
        let after = &s[eq + 2..];
        let end = after.find('"').expect("closing quote");
        out.insert(key, after[..end].to_owned());
        s = &after[end + 1..];
    }
    out
}

/// Inserts a path suffix before the query of a WOPI URL.
fn with_suffix(url: &str, suffix: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    format!("{base}{suffix}?{query}")
}

fn token_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .unwrap()
        .1
        .into_owned()
}

/// Every token handed to the office side: short, sealed by the gateway, nothing inside it.
fn check_token(stack: &Stack, token: &str, seen: &mut Vec<String>) {
    assert!(url_encoded_len(token) <= 1500, "{}", url_encoded_len(token));
    assert!(token.starts_with("wg1."), "{token}");
    let keys = TokenKeys::new(&Secret::new(stack.token_key.clone()), None);
    let claims = keys.verify(token, now()).expect("a gateway token");
    let plain = serde_json::to_string(&claims).unwrap();
    assert!(!plain.contains("eyJ") && !plain.contains(&stack.reva_secret));
    wopigate_testkit::hygiene::register_handed_out("gateway token", token);
    seen.push(token.to_owned());
}

async fn get_json(url: &str) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let r = client().get(url).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (
        status,
        r.json().await.unwrap_or(serde_json::Value::Null),
        headers,
    )
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// The OAuth2 authorization-code flow as Office and the Office Identity Service run it.
async fn sign_in(authorization_uri: &str, token_uri: &str, user: &str) -> String {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut auth = url::Url::parse(authorization_uri).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", MOBILE_CLIENT_ID)
        .append_pair("redirect_uri", MOBILE_REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "")
        .append_pair("state", "s-123")
        .append_pair("rs", "en-US")
        .append_pair("build", "16.0.1")
        .append_pair("platform", "iOS")
        .append_pair("login_hint", user);
    let r = no_redirects.get(auth).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(MOBILE_REDIRECT_URI));
    let q: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s-123");
    let code = q["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", MOBILE_REDIRECT_URI),
        ("client_id", MOBILE_CLIENT_ID),
        ("client_secret", MOBILE_CLIENT_SECRET),
    ];
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let post = || {
        no_redirects
            .post(token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    // A code is good once.
    let again = post().await.unwrap();
    assert_eq!(again.status(), 400);
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_mobile_flows_add_a_place_browse_open_save_and_renew() {
    let (stack, _gw) = start(mobile_stack()).await;
    let boot = format!("{}/wopibootstrapper", stack.gateway_url());
    let c = client();
    let mut seen = Vec::new();

    // §8.1 Add a Place: unauthenticated Bootstrap → 401 + exactly one Bearer challenge.
    let r = c.get(&boot).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenges: Vec<_> = r.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1);
    let challenge = challenges[0].to_str().unwrap();
    assert!(
        !challenge.contains(", "),
        "no spaces between parameters: {challenge}"
    );
    let p = challenge_params(challenge);
    assert_eq!(
        p["authorization_uri"],
        format!("{}/authorize", stack.idp.issuer())
    );
    assert_eq!(
        p["tokenIssuance_uri"],
        format!("{}/token", stack.idp.issuer())
    );
    assert_eq!(p["providerId"], "TPWOPIGATE");
    let schemes: serde_json::Value = serde_json::from_str(
        &percent_encoding::percent_decode_str(&p["UrlSchemes"])
            .decode_utf8()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(schemes["iOS"][0], "wopigate");

    // Sign-in (steps 5–8), then Bootstrap with the access token, documented `Bearer:` form.
    let oauth = sign_in(&p["authorization_uri"], &p["tokenIssuance_uri"], "alice").await;
    let r = c
        .get(&boot)
        .header("Authorization", format!("Bearer: {oauth}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let b: serde_json::Value = r.json().await.unwrap();
    let bootstrap = &b["Bootstrap"];
    assert_eq!(bootstrap["SignInName"], "alice@example.org");
    assert_eq!(bootstrap["UserFriendlyName"], "Alice Example");
    let user_id = bootstrap["UserId"].as_str().unwrap().to_owned();
    assert_eq!(user_id, "alice-sub");
    let eco = bootstrap["EcosystemUrl"].as_str().unwrap();
    assert!(eco.starts_with(&format!(
        "{}/wopi/ecosystem?access_token=",
        stack.gateway_url()
    )));
    check_token(&stack, &token_of(eco), &mut seen);
    let (status, body, _) = get_json(eco).await;
    assert_eq!(
        (status, &body["SupportsContainers"]),
        (200, &serde_json::json!(true))
    );

    // §8.2 Browse: GetRootContainer through the bootstrapper.
    let r = c
        .post(&boot)
        .bearer_auth(&oauth)
        .header("X-WOPI-EcosystemOperation", "GET_ROOT_CONTAINER")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(b["Bootstrap"]["EcosystemUrl"].is_string());
    let root = &b["RootContainerInfo"];
    assert_eq!(root["ContainerPointer"]["Name"], "home");
    assert_eq!(root["ContainerInfo"]["IsEduUser"], false);
    assert_eq!(root["ContainerInfo"]["LicenseCheckForEditIsEnabled"], true);
    let root_url = root["ContainerPointer"]["Url"].as_str().unwrap().to_owned();
    check_token(&stack, &token_of(&root_url), &mut seen);

    // EnumerateChildren down two levels, with an extension filter.
    let list = |url: String, filter: &'static str| {
        let c = client();
        async move {
            let r = c
                .get(with_suffix(&url, "/children"))
                .header("X-WOPI-FileExtensionFilterList", filter)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let home = list(root_url.clone(), ".docx,.XLSX").await;
    assert!(names(&home["ChildContainers"]).contains(&"Documents".to_owned()));
    let files = names(&home["ChildFiles"]);
    assert!(files.contains(&"report.docx".to_owned()), "{files:?}");
    assert!(
        !files.iter().any(|f| f.ends_with(".odt")),
        "filtered: {files:?}"
    );
    let docs_url = home["ChildContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "Documents")
        .unwrap()["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    check_token(&stack, &token_of(&docs_url), &mut seen);
    // CheckContainerInfo before entering.
    let (status, info, _) = get_json(&docs_url).await;
    assert_eq!(status, 200);
    assert_eq!(info["Name"], "Documents");
    assert_eq!(info["IsEduUser"], false);
    // What the container writes allow, from REVA's permissions.
    for k in [
        "UserCanCreateChildFile",
        "UserCanCreateChildContainer",
        "UserCanDelete",
        "UserCanRename",
    ] {
        assert_eq!(info[k], true, "{k}");
    }
    let docs = list(docs_url.clone(), ".docx,.xlsx").await;
    assert_eq!(names(&docs["ChildFiles"]), ["minutes.docx", "plan.xlsx"]);
    assert_eq!(names(&docs["ChildContainers"]), ["Archive"]);
    let archive_url = docs["ChildContainers"][0]["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    let archive = list(archive_url.clone(), ".docx").await;
    assert_eq!(names(&archive["ChildFiles"]), ["2023.docx"]);
    let (_, anc, _) = get_json(&with_suffix(&archive_url, "/ancestry")).await;
    assert_eq!(names(&anc["AncestorsWithRootFirst"]), ["home", "Documents"]);
    // Every URL handed out in a listing or ancestry carries a checked gateway token.
    for listing in [&home, &docs, &archive] {
        for kind in ["ChildContainers", "ChildFiles"] {
            for e in listing[kind].as_array().unwrap() {
                check_token(&stack, &token_of(e["Url"].as_str().unwrap()), &mut seen);
            }
        }
    }
    for e in anc["AncestorsWithRootFirst"].as_array().unwrap() {
        check_token(&stack, &token_of(e["Url"].as_str().unwrap()), &mut seen);
    }
    let minutes = docs["ChildFiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["Name"] == "minutes.docx")
        .unwrap()
        .clone();
    assert_eq!(minutes["Version"], "v1");
    assert_eq!(minutes["Size"], "minutes.docx".len());
    let lmt = minutes["LastModifiedTime"].as_str().unwrap();
    assert!(
        lmt.len() == 28 && lmt.ends_with('Z') && lmt.contains('T'),
        "{lmt}"
    );
    let file_url = minutes["Url"].as_str().unwrap().to_owned();
    let file_token = token_of(&file_url);
    check_token(&stack, &file_token, &mut seen);
    // Children tokens carry the calling token's expiry (no refresh by walking the tree).
    let keys = TokenKeys::new(&Secret::new(stack.token_key.clone()), None);
    let exp_of = |t: &str| keys.verify(t, now()).unwrap().exp;
    assert_eq!(exp_of(&file_token), exp_of(&token_of(&root_url)));

    // §8.2 step 3: CheckFileInfo, amended for Office mobile and valid under the CSPP schema.
    let (status, cfi, _) = get_json(&file_url).await;
    assert_eq!(status, 200, "{cfi}");
    for k in ["BaseFileName", "OwnerId", "UserId", "Version"] {
        assert!(cfi[k].is_string(), "{k} in {cfi}");
    }
    assert!(cfi["Size"].is_u64());
    for k in [
        "SupportsCoauth",
        "SequenceNumber",
        "OfficeCollaborationServiceEndpointUrl",
        "RealTimeChannelEndpointUrl",
        "AccessTokenExpiry",
        "ServerTime",
        "SharingStatus",
        "FileGeoLocationCode",
    ] {
        assert!(cfi.get(k).is_none(), "CSPP forbids {k}");
    }
    for k in [
        "IsEduUser",
        "LicenseCheckForEditIsEnabled",
        "SupportsContainers",
        "SupportsEcosystem",
        "SupportsLocks",
        "SupportsGetLock",
        "SupportsUpdate",
        "UserCanWrite",
    ] {
        assert!(cfi[k].is_boolean(), "{k} in {cfi}");
    }
    assert_eq!(cfi["UserId"], user_id.as_str(), "same UserId as Bootstrap");
    assert_eq!(
        cfi["LicenseCheckForEditIsEnabled"],
        info["LicenseCheckForEditIsEnabled"]
    );
    assert!(
        !cfi.to_string().contains("eyJ"),
        "no wopiserver token in {cfi}"
    );
    let (_, anc, _) = get_json(&with_suffix(&file_url, "/ancestry")).await;
    assert_eq!(names(&anc["AncestorsWithRootFirst"]), ["home", "Documents"]);
    // GetEcosystem from a file and from a container.
    for url in [&file_url, &docs_url] {
        let (status, body, _) = get_json(&with_suffix(url, "/ecosystem_pointer")).await;
        assert_eq!(status, 200);
        let eco = body["Url"].as_str().unwrap();
        assert!(eco.contains("/wopi/ecosystem?access_token="));
        check_token(&stack, &token_of(eco), &mut seen);
    }
    // The mobile file token was opened for the configured app.
    assert_eq!(
        keys.verify(&file_token, now())
            .unwrap()
            .file()
            .unwrap()
            .app
            .as_deref(),
        Some("Microsoft Office Online")
    );

    // Steps 4–6: GetLock, RefreshLock probe with an invalid lock id, Lock, GetFile.
    let op = |op: &'static str, lock: Option<&'static str>| {
        let mut r = client().post(&file_url).header("X-WOPI-Override", op);
        if let Some(l) = lock {
            r = r.header("X-WOPI-Lock", l);
        }
        r.send()
    };
    let r = op("GET_LOCK", None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-wopi-lock"], "");
    let r = op("REFRESH_LOCK", Some("not-a-lock-id")).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(op("LOCK", Some("mobile-lock")).await.unwrap().status(), 200);
    let r = client()
        .get(with_suffix(&file_url, "/contents"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "minutes.docx");
    // §8.3 Save and close.
    let r = client()
        .post(with_suffix(&file_url, "/contents"))
        .header("X-WOPI-Override", "PUT")
        .header("X-WOPI-Lock", "mobile-lock")
        .body("edited on a phone")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        op("UNLOCK", Some("mobile-lock")).await.unwrap().status(),
        200
    );

    // §8.4 Expired token: 401, then GetNewAccessToken, then the retry works.
    let mut claims: Claims = keys.verify(&file_token, now()).unwrap();
    claims.exp = now() - 1;
    let expired = keys.issue(&claims);
    let (base, _) = file_url.split_once('?').unwrap();
    let r = wopi_get(base, &expired).await;
    assert_eq!(r.status(), 401);
    let opens_before = stack
        .wopiserver
        .requests()
        .iter()
        .filter(|r| r.path == "/wopi/iop/openinapp")
        .count();
    let r = c
        .post(&boot)
        .bearer_auth(&oauth)
        .header("X-WOPI-EcosystemOperation", "GET_NEW_ACCESS_TOKEN")
        .header("X-WOPI-WopiSrc", base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    let fresh = b["AccessTokenInfo"]["AccessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    check_token(&stack, &fresh, &mut seen);
    let expiry = b["AccessTokenInfo"]["AccessTokenExpiry"].as_u64().unwrap();
    assert_eq!(expiry, exp_of(&fresh) * 1000, "epoch milliseconds");
    let r = wopi_get(base, &fresh).await;
    assert_eq!(r.status(), 200);
    let opens: Vec<_> = stack
        .wopiserver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/wopi/iop/openinapp")
        .collect();
    assert_eq!(
        opens.len(),
        opens_before + 1,
        "a fresh openinapp for the new token"
    );
    let reva_token = opens
        .last()
        .unwrap()
        .header("tokenheader")
        .unwrap()
        .to_owned();
    let reva_claims = stack.reva.verify(&reva_token).expect("a valid REVA token");
    assert!(reva_claims.exp > now() + 60, "a fresh REVA token");
    // Nothing the office side saw holds a REVA token.
    for t in &seen {
        assert!(!t.contains(&reva_token));
    }
    assert!(seen.len() >= 15, "{}", seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mobile_input_gets_the_codes_the_spec_lists() {
    let (stack, _gw) = start(mobile_stack()).await;
    let boot = format!("{}/wopibootstrapper", stack.gateway_url());
    let oauth = stack.idp.token("alice");
    let c = client();
    let new_token = |src: &str| {
        c.post(&boot)
            .bearer_auth(&oauth)
            .header("X-WOPI-EcosystemOperation", "GET_NEW_ACCESS_TOKEN")
            .header("X-WOPI-WopiSrc", src)
            .send()
    };
    let gw = stack.gateway_url();
    let id = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    // A file the user may not see, an unknown one, and malformed or foreign WopiSrc values.
    for (name, src) in [
        (
            "file of another user",
            format!("{gw}/wopi/files/{}", id("storage-1$!file-none")),
        ),
        (
            "unknown file",
            format!("{gw}/wopi/files/{}", id("storage-1$!nope")),
        ),
        (
            "unknown container",
            format!("{gw}/wopi/containers/{}", id("storage-1$!nope")),
        ),
        ("not a URL", "::not a url::".to_owned()),
        (
            "another origin",
            format!(
                "https://evil.example/wopi/files/{}",
                id("storage-1$!file-docx")
            ),
        ),
        (
            "with a token",
            format!(
                "{gw}/wopi/files/{}?access_token=x",
                id("storage-1$!file-docx")
            ),
        ),
        ("not a WOPI path", format!("{gw}/api/v0/wopi/open")),
        ("undecodable id", format!("{gw}/wopi/files/%25%25")),
    ] {
        let r = new_token(&src).await.unwrap();
        assert_eq!(r.status(), 404, "{name}");
    }
    // A good one works (control).
    let r = new_token(&format!("{gw}/wopi/files/{}", id("storage-1$!file-docx")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Unknown and reserved ecosystem operations → 501; no or bad OAuth token → 401 + challenge.
    for op in ["FROBNICATE", "GET_WOPI_SRC_WITH_ACCESS_TOKEN"] {
        let r = c
            .post(&boot)
            .bearer_auth(&oauth)
            .header("X-WOPI-EcosystemOperation", op)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 501, "{op}");
    }
    for auth in [None, Some("Bearer not-a-token"), Some("Basic YTpi")] {
        let mut req = c
            .post(&boot)
            .header("X-WOPI-EcosystemOperation", "GET_NEW_ACCESS_TOKEN");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer authorization_uri=")
        );
    }

    // Container endpoints: a token of another kind or resource is 401, an unknown container
    // 404, an unimplemented operation 501; nothing of it reached the wopiserver.
    let keys = TokenKeys::new(&Secret::new(stack.token_key.clone()), None);
    let r = c
        .post(&boot)
        .bearer_auth(&oauth)
        .header("X-WOPI-EcosystemOperation", "GET_ROOT_CONTAINER")
        .send()
        .await
        .unwrap();
    let b: serde_json::Value = r.json().await.unwrap();
    let root_url = b["RootContainerInfo"]["ContainerPointer"]["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    let root_token = token_of(&root_url);
    let eco_token = token_of(b["Bootstrap"]["EcosystemUrl"].as_str().unwrap());
    let (root_base, _) = root_url.split_once('?').unwrap();
    let r = c
        .get(root_base)
        .query(&[("access_token", &eco_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "ecosystem token on a container");
    let other = format!("{gw}/wopi/containers/{}", id("storage-1$!folder-docs"));
    let r = c
        .get(&other)
        .query(&[("access_token", &root_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "token of another container");
    let mut claims = keys.verify(&root_token, now()).unwrap();
    let Grant::Container(folder) = &mut claims.grant else {
        panic!("a container token")
    };
    folder.opaque_id = "nope".into();
    let unknown = keys.issue(&claims);
    let r = c
        .get(format!("{gw}/wopi/containers/{}", id("storage-1$!nope")))
        .query(&[("access_token", &unknown)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "unknown container");
    let r = c
        .post(root_base)
        .query(&[("access_token", &root_token)])
        .header("X-WOPI-Override", "GET_SHARE_URL")
        .header("X-WOPI-UrlType", "ReadOnly")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501, "container GetShareUrl is not implemented");
    assert!(
        stack
            .wopiserver
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/wopi/files/")),
        "no WOPI call reached the wopiserver"
    );
}

/// POSTs a container write; (status, headers, JSON).
async fn container_write(
    url: &str,
    op: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut r = client().post(url).header("X-WOPI-Override", op);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (
        status,
        h,
        resp.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_mobile_creates_edits_renames_and_deletes_in_folders() {
    let (stack, _gw) = start(mobile_stack()).await;
    let c = client();
    let root = crate::root_container_url(&stack).await;

    // A folder, then a document in it, from the app side.
    let (s, _, folder) = container_write(
        &root,
        "CREATE_CHILD_CONTAINER",
        &[("X-WOPI-SuggestedTarget", "Projects")],
    )
    .await;
    assert_eq!(s, 200, "{folder}");
    assert_eq!(folder["ContainerPointer"]["Name"], "Projects");
    assert_eq!(folder["ContainerInfo"]["UserCanCreateChildFile"], true);
    let projects = folder["ContainerPointer"]["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stack.tree.get_by_path("/home/Projects").unwrap().container);

    let (s, _, doc) = container_write(
        &projects,
        "CREATE_CHILD_FILE",
        &[("X-WOPI-SuggestedTarget", ".docx")],
    )
    .await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(doc["Name"], "New document.docx");
    assert!(doc["HostEditUrl"].as_str().unwrap().contains("WOPISrc="));
    let file = doc["Url"].as_str().unwrap().to_owned();
    let created = stack
        .tree
        .get_by_path("/home/Projects/New document.docx")
        .unwrap();
    assert!(matches!(&created.content, wopigate_testkit::tree::Content::Bytes(b) if b.is_empty()));
    // Edited and saved through the normal WOPI path with the token from the answer.
    let (status, info, _) = get_json(&file).await;
    assert_eq!(status, 200);
    assert_eq!(info["BaseFileName"], "New document.docx");
    assert_eq!(info["Size"], 0);
    let (base, _) = file.split_once('?').unwrap();
    let token = token_of(&file);
    // A WOPI POST on the new document: (status, X-WOPI-Lock).
    let post = async |op: &str, suffix: &str, lock: Option<&str>, body: Vec<u8>| {
        let mut r = c
            .post(format!("{base}{suffix}"))
            .query(&[("access_token", token.as_str())])
            .header("X-WOPI-Override", op);
        if let Some(l) = lock {
            r = r.header("X-WOPI-Lock", l);
        }
        let r = r.body(body).send().await.unwrap();
        let lock = r
            .headers()
            .get("x-wopi-lock")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), lock)
    };
    for (op, suffix, body) in [
        ("LOCK", "", Vec::new()),
        ("PUT", "/contents", b"written on the phone".to_vec()),
        ("UNLOCK", "", Vec::new()),
    ] {
        assert_eq!(
            post(op, suffix, Some("phone-lock"), body).await.0,
            200,
            "{op}"
        );
    }
    let saved = stack
        .tree
        .get_by_path("/home/Projects/New document.docx")
        .unwrap();
    assert!(
        matches!(&saved.content, wopigate_testkit::tree::Content::Bytes(b) if b == b"written on the phone")
    );

    // DeleteFile (the wopiserver's, through the gateway): refused while locked.
    assert_eq!(post("LOCK", "", Some("held"), Vec::new()).await.0, 200);
    assert_eq!(
        post("DELETE", "", None, Vec::new()).await,
        (409, Some("held".to_owned()))
    );
    assert!(
        stack
            .tree
            .get_by_path("/home/Projects/New document.docx")
            .is_some()
    );

    // Name rules: the same name again is a conflict with a proposal; an illegal one 400; a
    // suggestion is adjusted; both headers 501.
    let (s, h, _) = container_write(
        &projects,
        "CREATE_CHILD_FILE",
        &[("X-WOPI-RelativeTarget", "New document.docx")],
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(h["x-wopi-validrelativetarget"], "New document (2).docx");
    let (s, h, _) = container_write(
        &projects,
        "CREATE_CHILD_FILE",
        &[("X-WOPI-RelativeTarget", "bad:name.docx")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(h.contains_key("x-wopi-invalidfilenameerror"));
    let (s, _, adjusted) = container_write(
        &projects,
        "CREATE_CHILD_FILE",
        &[("X-WOPI-SuggestedTarget", "New document.docx")],
    )
    .await;
    assert_eq!(
        (s, adjusted["Name"].as_str()),
        (200, Some("New document (2).docx"))
    );
    let (s, _, _) = container_write(
        &projects,
        "CREATE_CHILD_FILE",
        &[
            ("X-WOPI-SuggestedTarget", ".docx"),
            ("X-WOPI-RelativeTarget", "x.docx"),
        ],
    )
    .await;
    assert_eq!(s, 501);

    // Rename (UTF-7): same container id, new name; the old URL still names it.
    let (s, _, renamed) = container_write(
        &projects,
        "RENAME_CONTAINER",
        &[("X-WOPI-RequestedName", "Projekt+AOQ-re 2026")],
    )
    .await;
    assert_eq!(
        (s, renamed["Name"].as_str()),
        (200, Some("Projektäre 2026"))
    );
    let (status, info, _) = get_json(&projects).await;
    assert_eq!(
        (status, info["Name"].as_str()),
        (200, Some("Projektäre 2026"))
    );
    assert!(
        stack
            .tree
            .get_by_path("/home/Projektäre 2026/New document.docx")
            .is_some()
    );
    let (s, _, _) = container_write(
        &projects,
        "RENAME_CONTAINER",
        &[("X-WOPI-RequestedName", "Documents")],
    )
    .await;
    assert_eq!(s, 409, "a sibling has that name");

    // The document unlocked, DeleteFile removes it.
    assert_eq!(post("UNLOCK", "", Some("held"), Vec::new()).await.0, 200);
    assert_eq!(post("DELETE", "", None, Vec::new()).await.0, 200);
    assert!(
        stack
            .tree
            .get_by_path("/home/Projektäre 2026/New document.docx")
            .is_none()
    );

    // Delete: refused while it has children; an empty one goes.
    let (s, _, _) = container_write(&projects, "DELETE_CONTAINER", &[]).await;
    assert_eq!(s, 409);
    let (s, _, empty) = container_write(
        &root,
        "CREATE_CHILD_CONTAINER",
        &[("X-WOPI-RelativeTarget", "Empty")],
    )
    .await;
    assert_eq!(s, 200);
    let empty = empty["ContainerPointer"]["Url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, _) = container_write(&empty, "DELETE_CONTAINER", &[]).await;
    assert_eq!(s, 200);
    assert!(stack.tree.get_by_path("/home/Empty").is_none());
    let (status, _, _) = get_json(&empty).await;
    assert_eq!(status, 404);
    // The root is neither deleted nor renamed.
    let (s, _, _) = container_write(&root, "DELETE_CONTAINER", &[]).await;
    assert_eq!(s, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_writes_follow_revas_permissions() {
    use wopigate::pb::cs3::storage::provider::v1beta1::ResourcePermissions;
    use wopigate_testkit::tree::read_only_perms;
    let (stack, _gw) = start(mobile_stack()).await;
    let root = crate::root_container_url(&stack).await;
    let folder = async |parent: &str, name: &str| {
        let (s, _, f) = container_write(
            parent,
            "CREATE_CHILD_CONTAINER",
            &[("X-WOPI-RelativeTarget", name)],
        )
        .await;
        assert_eq!(s, 200, "{f}");
        f["ContainerPointer"]["Url"].as_str().unwrap().to_owned()
    };
    let shared = folder(&root, "Shared").await;
    let inner = folder(&shared, "Inner").await;
    let id_of = |path: &str| stack.tree.get_by_path(path).unwrap().id.opaque_id;
    // A folder shared read-only: nothing can be created in it.
    stack
        .tree
        .set_perms(STORAGE, &id_of("/home/Shared"), read_only_perms());
    let (_, info, _) = get_json(&shared).await;
    for k in ["UserCanCreateChildFile", "UserCanCreateChildContainer"] {
        assert_eq!(info[k], false, "{k}: {info}");
    }
    for (op, header) in [
        ("CREATE_CHILD_FILE", ("X-WOPI-SuggestedTarget", ".docx")),
        ("CREATE_CHILD_CONTAINER", ("X-WOPI-SuggestedTarget", "Sub")),
    ] {
        let (s, _, body) = container_write(&shared, op, &[header]).await;
        assert_eq!(s, 501, "{op}: {body}");
    }
    let below: Vec<_> = stack
        .tree
        .children(&stack.tree.get_by_path("/home/Shared").unwrap().id)
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(below, ["Inner"], "nothing created");
    // A folder the user may list but not delete or move.
    stack.tree.set_perms(
        STORAGE,
        &id_of("/home/Shared/Inner"),
        ResourcePermissions {
            delete: false,
            r#move: false,
            ..wopigate_testkit::tree::full_perms()
        },
    );
    let (_, info, _) = get_json(&inner).await;
    assert_eq!(
        (&info["UserCanDelete"], &info["UserCanRename"]),
        (&false.into(), &false.into())
    );
    let (s, _, _) = container_write(&inner, "DELETE_CONTAINER", &[]).await;
    assert_eq!(s, 501);
    let (s, _, _) = container_write(
        &inner,
        "RENAME_CONTAINER",
        &[("X-WOPI-RequestedName", "Elsewhere")],
    )
    .await;
    assert_eq!(s, 501);
    assert!(stack.tree.get_by_path("/home/Shared/Inner").is_some());
    assert!(stack.tree.get_by_path("/home/Shared/Elsewhere").is_none());
    let writes = ["TouchFile", "CreateContainer", "Delete", "Move"];
    let sent: Vec<_> = stack
        .reva
        .calls()
        .iter()
        .filter(|c| writes.contains(&c.method))
        .map(|c| c.method)
        .collect();
    assert_eq!(
        sent,
        ["CreateContainer", "CreateContainer"],
        "only the two allowed writes"
    );
}
