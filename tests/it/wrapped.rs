//! Gateway-issued tokens on the open API and on `/wopi/files/*`: short, sealed, free of REVA
//! tokens; swapped for the wopiserver's before proxying; answers rewritten so the wopiserver's
//! token never reaches the office app; bad tokens stopped before any upstream.

use wopigate::ids::Resource;
use wopigate::secret::Secret;
use wopigate::tokens::gateway::{Claims, FileGrant, Grant, Kind, TokenKeys, url_encoded_len};
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::test_idp::now;

use crate::{client, open_as_alice, start, wopi_src_path};

fn keys(stack: &Stack) -> TokenKeys {
    TokenKeys::new(&Secret::new(stack.token_key.clone()), None)
}

/// Upstream requests to `/wopi/files/*` and openinapp calls the wopiserver saw.
fn wopi_calls(stack: &Stack) -> (usize, usize) {
    let r = stack.wopiserver.requests();
    (
        r.iter()
            .filter(|r| r.path.starts_with("/wopi/files/"))
            .count(),
        r.iter().filter(|r| r.path == "/wopi/iop/openinapp").count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_hands_out_gateway_tokens_that_are_swapped_and_never_leak_the_wopiserver_token() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200, "{body}");
    let token = body["accesstoken"].as_str().unwrap().to_owned();
    assert!(token.starts_with("wg1."), "{token}");
    assert!(
        url_encoded_len(&token) <= 1500,
        "{}",
        url_encoded_len(&token)
    );
    let claims = keys(&stack)
        .verify(&token, now())
        .expect("sealed with the configured key");
    assert_eq!(claims.kind(), Kind::File);
    assert_eq!(claims.user.username, "alice");
    let resource = claims.resource().cloned().unwrap();
    assert_eq!(
        (resource.storage_id.as_str(), resource.opaque_id.as_str()),
        (STORAGE, "file-docx")
    );
    assert_eq!(body["accesstokenttl"].as_u64().unwrap(), claims.exp * 1000);
    assert!(
        claims.exp.abs_diff(now() + 36_000) <= 5,
        "10 h default lifetime"
    );
    // No REVA token, no JWT inside.
    let reva_token = stack
        .wopiserver
        .requests()
        .iter()
        .find_map(|r| r.header("tokenheader").map(str::to_owned))
        .unwrap();
    assert!(!token.contains(&reva_token));
    let plain = serde_json::to_string(&claims).unwrap();
    assert!(
        !plain.contains("eyJ") && !plain.contains(&reva_token),
        "no JWT sealed inside"
    );

    let file = format!(
        "{}{}",
        stack.gateway_url(),
        wopi_src_path(body["wopiclienturl"].as_str().unwrap())
    );
    let c = client();
    let (_, opens_before) = wopi_calls(&stack);
    let r = c
        .get(&file)
        .query(&[("access_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["BaseFileName"], "report.docx");
    // The wopiserver got its own token, on its inode path; the answer carries ours instead.
    let seen = stack
        .wopiserver
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/wopi/files/"))
        .unwrap();
    let upstream_token = url::form_urlencoded::parse(seen.query.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(
        stack.wopiserver.verify(&upstream_token).is_some(),
        "a wopiserver token upstream"
    );
    assert_eq!(seen.path, "/wopi/files/storage-1!ZmlsZS1kb2N4");
    assert!(
        !text.contains(&upstream_token),
        "wopiserver token leaked: {text}"
    );
    assert!(
        info["HostEditUrl"].as_str().unwrap().contains(&token[4..]),
        "{text}"
    );
    assert!(
        info.get("DownloadUrl").is_none(),
        "/wopi/iop/download is not public"
    );
    assert_eq!(
        wopi_calls(&stack).1,
        opens_before,
        "the open's wopiserver token was cached"
    );

    // Locks and saves work with the gateway token.
    let post = |url: String, op: &'static str| {
        c.post(url)
            .query(&[("access_token", &token)])
            .header("X-WOPI-Override", op)
            .header("X-WOPI-Lock", "L1")
    };
    assert_eq!(
        post(file.clone(), "LOCK").send().await.unwrap().status(),
        200
    );
    let r = post(format!("{file}/contents"), "PUT")
        .body("saved through a wrapped token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        post(file.clone(), "UNLOCK").send().await.unwrap().status(),
        200
    );
    let r = c
        .get(format!("{file}/contents"))
        .query(&[("access_token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "saved through a wrapped token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gateway_tokens_stop_at_the_gateway_and_any_replica_can_serve_a_good_one() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let (_, body) = open_as_alice(&stack, "file-docx").await;
    let token = body["accesstoken"].as_str().unwrap().to_owned();
    let file = format!(
        "{}{}",
        stack.gateway_url(),
        wopi_src_path(body["wopiclienturl"].as_str().unwrap())
    );
    let (_, odt) = open_as_alice(&stack, "file-odt").await;
    let odt_token = odt["accesstoken"].as_str().unwrap().to_owned();
    let k = keys(&stack);
    let mut claims: Claims = k.verify(&token, now()).unwrap();
    claims.exp = now() - 1;
    let expired = k.issue(&claims);
    let foreign =
        TokenKeys::new(&Secret::new("another deployment's key, 32+ chars"), None).issue(&Claims {
            exp: now() + 600,
            ..claims.clone()
        });
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 8;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let container = k.issue(&Claims {
        grant: Grant::Container(claims.resource().cloned().unwrap()),
        exp: now() + 600,
        ..claims.clone()
    });

    stack.reva.clear_calls();
    stack.wopiserver.clear_requests();
    let c = client();
    for (name, t) in [
        ("tampered", tampered.as_str()),
        ("expired", expired.as_str()),
        ("sealed by another key", foreign.as_str()),
        ("another file's token", odt_token.as_str()),
        ("a container token", container.as_str()),
        ("garbage", "wg1.bm90IGEgdG9rZW4"),
    ] {
        let r = c
            .get(&file)
            .query(&[("access_token", t)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}");
    }
    assert!(stack.reva.calls().is_empty(), "nothing reached REVA");
    assert!(
        stack.wopiserver.requests().is_empty(),
        "nothing reached the wopiserver"
    );

    // A token this replica never saw (as if issued by another replica with the same key):
    // the gateway obtains a wopiserver token itself, with a REVA token it mints.
    let fresh = k.issue(&Claims {
        exp: now() + 3600,
        ..claims.clone()
    });
    let r = c
        .get(&file)
        .query(&[("access_token", &fresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        wopi_calls(&stack),
        (1, 1),
        "one openinapp, then the proxied call"
    );
    assert!(stack.reva.calls().iter().any(|c| c.method == "Stat"));
    // A resource the user may not see: 404, as WOPI prefers.
    let hidden = k.issue(&Claims {
        grant: Grant::File(FileGrant {
            resource: Resource {
                storage_id: STORAGE.into(),
                space_id: String::new(),
                opaque_id: "file-none".into(),
            },
            ..claims.file().unwrap().clone()
        }),
        exp: now() + 3600,
        ..claims
    });
    let r = c
        .get(format!(
            "{}/wopi/files/storage-1!ZmlsZS1ub25l",
            stack.gateway_url()
        ))
        .query(&[("access_token", &hidden)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
