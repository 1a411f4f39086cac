//! What the gateway corrects in the wopiserver v11.5.0 (issue #24), each against the double
//! that now behaves like it: RenameFile executed whatever `enablerename` says and by the path in
//! its token; Save As decided from a token's unverified claims; a token naming no office app let
//! off the proof check; a view-mode downgrade the gateway token did not follow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use wopigate::secret::Secret;
use wopigate::tokens::gateway::{Claims, TokenKeys};
use wopigate::tokens::now;
use wopigate::wopi::proof::ticks_of;
use wopigate_testkit::fake_office::MICROSOFT_DISCOVERY;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::proof_signer::validator_signers;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::{
    WopiFile as File, check_file_info, client, enc, open_as_alice, open_wopi_file as open, start,
    start_gateway,
};

/// A WOPI POST: status, `X-WOPI-Lock` and the JSON body.
async fn post(
    f: &File,
    op: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Option<String>, serde_json::Value) {
    let suffix = if op == "PUT" { "/contents" } else { "" };
    let mut r = client()
        .post(format!("{}{suffix}", f.url))
        .query(&[("access_token", f.token.as_str())])
        .header("X-WOPI-Override", op);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let lock = resp
        .headers()
        .get("x-wopi-lock")
        .map(|v| v.to_str().unwrap().to_owned());
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, lock, json)
}

/// Requests with `X-WOPI-Override: op` the wopiserver received.
fn seen_op(stack: &Stack, op: &str) -> usize {
    stack
        .wopiserver
        .requests()
        .iter()
        .filter(|r| r.header("x-wopi-override") == Some(op))
        .count()
}

fn pass_through() -> StackOptions {
    StackOptions {
        wrap_tokens: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_is_refused_unless_switched_on_whatever_the_wopiserver_advertises() {
    for opts in [StackOptions::default(), pass_through()] {
        let wrapped = opts.wrap_tokens;
        let (stack, _gw) = start(opts).await;
        // `enablerename = True` on the wopiserver: its CheckFileInfo offers renaming.
        stack.wopiserver.set_enable_rename(true);
        let f = open(&stack, "file-docx").await;
        let (s, info) = check_file_info(&f).await;
        assert_eq!(s, 200);
        assert_eq!(info["UserCanWrite"], true);
        assert_eq!(
            (&info["SupportsRename"], &info["UserCanRename"]),
            (&false.into(), &false.into()),
            "wrapped: {wrapped}: {info}"
        );
        let (s, _, body) = post(&f, "RENAME_FILE", &[("X-WOPI-RequestedName", "x")], vec![]).await;
        assert_eq!((s, &body["code"]), (501, &"not_implemented".into()));
        assert_eq!(seen_op(&stack, "RENAME_FILE"), 0, "never forwarded");
        assert!(stack.tree.get_by_path("/home/report.docx").is_some());
        assert!(stack.tree.get_by_path("/home/x.docx").is_none());
        if wrapped {
            // A gateway token this replica never saw: refused before anything is renewed.
            let keys = TokenKeys::new(&Secret::new(stack.token_key.clone()), None);
            let claims = keys.verify(&f.token, now()).unwrap();
            let fresh = File {
                url: f.url.clone(),
                token: keys.issue(&Claims {
                    exp: claims.exp - 1,
                    ..claims
                }),
            };
            stack.wopiserver.clear_requests();
            let (s, _, _) = post(
                &fresh,
                "RENAME_FILE",
                &[("X-WOPI-RequestedName", "x")],
                vec![],
            )
            .await;
            assert_eq!(s, 501);
            assert!(
                stack.wopiserver.requests().is_empty(),
                "no openinapp for a refused rename"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_keeps_the_gateway_token_session_on_the_renamed_file() {
    let (stack, _gw) = start(StackOptions {
        extra_config: "[wopi]\nrename = true\n".into(),
        ..Default::default()
    })
    .await;
    let f = open(&stack, "file-docx").await;
    let (_, info) = check_file_info(&f).await;
    assert_eq!(
        (&info["SupportsRename"], &info["UserCanRename"]),
        (&true.into(), &true.into()),
        "{info}"
    );
    let lock = [("X-WOPI-Lock", "before-rename")];
    assert_eq!(post(&f, "LOCK", &lock, vec![]).await.0, 200);
    let (s, _, body) = post(
        &f,
        "RENAME_FILE",
        &[("X-WOPI-RequestedName", "renamed"), lock[0]],
        vec![],
    )
    .await;
    assert_eq!((s, &body["Name"]), (200, &"renamed".into()));
    let moved = stack
        .tree
        .get_by_path("/home/renamed.docx")
        .expect("renamed");
    assert_eq!(moved.id.opaque_id, "file-docx");
    // The same gateway token goes on, on the new path: the wopiserver token it stood for named
    // the old one (which answered 404 before the fix).
    let (s, info) = check_file_info(&f).await;
    assert_eq!((s, &info["BaseFileName"]), (200, &"renamed.docx".into()));
    let (s, _, _) = post(&f, "PUT", &lock, b"after the rename".to_vec()).await;
    assert_eq!(s, 200, "the lock taken before the rename still holds");
    assert_eq!(post(&f, "UNLOCK", &lock, vec![]).await.0, 200);
    let saved = stack.tree.get_by_path("/home/renamed.docx").unwrap();
    assert!(
        matches!(saved.content, wopigate_testkit::tree::Content::Bytes(ref b) if b == b"after the rename")
    );
    // The wopiserver's own defect stays visible (fixed by the gateway's own RenameFile later):
    // a requested name with a dot becomes an empty target, and nothing moves.
    let (s, _, _) = post(
        &f,
        "RENAME_FILE",
        &[("X-WOPI-RequestedName", "v1.2")],
        vec![],
    )
    .await;
    assert_eq!(s, 500);
    assert!(stack.tree.get_by_path("/home/renamed.docx").is_some());
    assert_eq!(check_file_info(&f).await.0, 200);
}

/// `token`'s payload with `viewmode` changed, signed with a key that is not the wopiserver's.
fn forged(token: &str, viewmode: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["viewmode"] = viewmode.into();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the wopiserver's key"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_as_believes_what_the_wopiserver_grants_not_what_a_token_claims() {
    let (stack, _gw) = start(pass_through()).await;
    let ro = open(&stack, "file-ro").await;
    assert!(ro.token.starts_with("eyJ"), "a wopiserver token");
    let before = stack.tree.children(&home(&stack)).len();
    let save_as = async |f: &File| {
        post(
            f,
            "PUT_RELATIVE",
            &[("X-WOPI-SuggestedTarget", ".docx")],
            b"copy".to_vec(),
        )
        .await
    };
    // Genuine and read-only: not permitted.
    assert_eq!(save_as(&ro).await.0, 501);
    // Re-signed to claim read-write: the wopiserver rejects the token, so does the gateway.
    let forged = File {
        url: ro.url.clone(),
        token: forged(&ro.token, "VIEW_MODE_READ_WRITE"),
    };
    let (s, _, body) = save_as(&forged).await;
    assert_eq!((s, &body["code"]), (401, &"invalid_token".into()), "{body}");
    assert_eq!(
        stack.tree.children(&home(&stack)).len(),
        before,
        "nothing created"
    );
    assert!(stack.reva.calls().iter().all(|c| c.method != "TouchFile"));
    // A genuine read-write token still saves as.
    let rw = open(&stack, "file-docx").await;
    assert_eq!(save_as(&rw).await.0, 200);
    assert_eq!(stack.tree.children(&home(&stack)).len(), before + 1);
}

fn home(stack: &Stack) -> wopigate::pb::cs3::storage::provider::v1beta1::ResourceId {
    stack.tree.get_by_path("/home").unwrap().id
}

/// Microsoft's app with its proofs switched off (the test sends none) next to Collabora.
async fn start_with_unsigned_microsoft(opts: StackOptions) -> (Stack, GatewayProcess) {
    let stack = Stack::start(opts).await;
    let config = stack.config_toml().replace(
        "name = \"Microsoft Office Online\"\n",
        "name = \"Microsoft Office Online\"\nproof_keys = \"off\"\n",
    );
    let path = stack.dir().join("unsigned.toml");
    std::fs::write(&path, config).unwrap();
    let gw = start_gateway(&stack, &path).await;
    (stack, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_mode_the_wopiserver_downgraded_is_the_gateway_tokens_view_mode() {
    let (stack, _gw) = start_with_unsigned_microsoft(StackOptions::default()).await;
    let mut e = stack.tree.get_by(STORAGE, "file-docx").unwrap();
    e.id.opaque_id = "file-doc".into();
    e.name = "legacy.doc".into();
    e.path = "/home/legacy.doc".into();
    stack.tree.insert(e);
    // The wopiserver lets only Collabora edit legacy types: read-only, with its reason.
    let (f, body) = crate::app_open(
        &stack,
        "storage-1!file-doc",
        "Microsoft Office Online",
        Some("write"),
    )
    .await;
    assert_eq!(
        body["forced_viewmode_reason"], "App does not support edit for this file type",
        "{body}"
    );
    let (s, info) = check_file_info(&f).await;
    assert_eq!(s, 200);
    assert_eq!(info["UserCanWrite"], false);
    // The gateway token says read-only too: no Save As offered, none served.
    assert_eq!(info["UserCanNotWriteRelative"], true, "{info}");
    let (s, _, _) = post(
        &f,
        "PUT_RELATIVE",
        &[("X-WOPI-SuggestedTarget", ".docx")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(s, 501);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_naming_no_office_app_is_still_proof_checked() {
    // Only Microsoft's app, which signs its requests (proofs enforced).
    let (stack, _gw) = start(StackOptions {
        offices: vec![("Microsoft Office Online", MICROSOFT_DISCOVERY)],
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    // A genuine wopiserver token with an empty `appname`, as legacy `/iop/open` issued them.
    let reva = stack.reva_token_for_alice(Duration::from_secs(3600), unix_now());
    let token = crate::wopiserver_token_for_report(&stack, reva, "");
    wopigate_testkit::hygiene::register_handed_out("legacy wopiserver token", &token);
    let url = format!(
        "{}/wopi/files/{STORAGE}!{}",
        stack.gateway_url(),
        URL_SAFE.encode("file-docx")
    );
    // Unsigned: refused before the wopiserver (which would have served it).
    let r = crate::wopi_get(&url, &token).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "proof_invalid"
    );
    assert_eq!(stack.wopiserver.requests().len(), 0);
    // Signed with the office app's key: through.
    let (current, _) = validator_signers();
    let now = ticks_of(SystemTime::now());
    let full = format!("{url}?access_token={}", enc(&token));
    let r = client()
        .get(&full)
        .header("X-WOPI-TimeStamp", now.to_string())
        .header("X-WOPI-Proof", current.sign(&token, &full, now))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stack.wopiserver.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wopiserver_reaches_files_through_reva_by_path_with_the_users_rights() {
    let (stack, _gw) = start(StackOptions::default()).await;
    // An ODF document: Lock writes LibreOffice's lock file next to it, Unlock removes it.
    let odt = open(&stack, "file-odt").await;
    let lock = [("X-WOPI-Lock", "odf-lock")];
    assert_eq!(post(&odt, "LOCK", &lock, vec![]).await.0, 200);
    assert!(stack.tree.get_by_path("/home/.~lock.notes.odt#").is_some());
    assert_eq!(post(&odt, "UNLOCK", &lock, vec![]).await.0, 200);
    assert!(stack.tree.get_by_path("/home/.~lock.notes.odt#").is_none());
    // Rights withdrawn after the open: REVA refuses the wopiserver's writes (its 500), and the
    // document stays as it was.
    let f = open(&stack, "file-docx").await;
    let lock = [("X-WOPI-Lock", "docx-lock")];
    assert_eq!(post(&f, "LOCK", &lock, vec![]).await.0, 200);
    let before = stack.tree.get_by(STORAGE, "file-docx").unwrap();
    stack.tree.set_perms(
        STORAGE,
        "file-docx",
        wopigate_testkit::tree::read_only_perms(),
    );
    let (s, _, _) = post(&f, "PUT", &lock, b"not allowed any more".to_vec()).await;
    assert_eq!(s, 500, "REVA refuses the upload");
    assert_eq!(post(&f, "UNLOCK", &lock, vec![]).await.0, 200);
    let (s, _, _) = post(&f, "DELETE", &[], vec![]).await;
    assert_eq!(s, 500, "REVA refuses the delete");
    let after = stack.tree.get_by(STORAGE, "file-docx").unwrap();
    assert_eq!(
        format!("{:?}", (after.content, after.version)),
        format!("{:?}", (before.content, before.version))
    );
    let reva_stats = stack
        .reva
        .calls()
        .iter()
        .filter(|c| c.method == "Stat" && c.resource.is_none())
        .count();
    assert!(
        reva_stats >= 4,
        "every WOPI call Stat-ed by path: {reva_stats}"
    );
    // REVA unreachable from the wopiserver: WOPI traffic fails as the real one fails.
    // (CheckFileInfo last: v11.5.0 calls that failure "not found", and a 404 has the gateway
    // renew the session's wopiserver token, through `openinapp`, which fails too.)
    stack.wopiserver.set_storage_unreachable(true);
    let r = client()
        .get(format!("{}/contents", odt.url))
        .query(&[("access_token", odt.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(check_file_info(&odt).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_renamed_elsewhere_costs_one_404_and_getlocks_cost_nothing() {
    let (stack, _gw) = start(StackOptions {
        extra_config: "[wopi]\nnormalize_get_lock = false\n".into(),
        ..Default::default()
    })
    .await;
    let f = open(&stack, "file-docx").await;
    assert_eq!(check_file_info(&f).await.0, 200);
    let opens = || {
        stack
            .wopiserver
            .requests()
            .iter()
            .filter(|r| r.path == "/wopi/iop/openinapp")
            .count()
    };
    let before = opens();
    // The wopiserver's "not locked" (404 + empty X-WOPI-Lock) is no reason to renew.
    for _ in 0..3 {
        let (s, lock, _) = post(&f, "GET_LOCK", &[], vec![]).await;
        assert_eq!((s, lock.as_deref()), (404, Some("")));
    }
    assert_eq!(check_file_info(&f).await.0, 200);
    assert_eq!(opens(), before, "no openinapp for GetLock's 404");
    // Renamed by someone else (another replica, the web UI): the session's wopiserver token
    // names the old path; the first call says 404 and the next one is on the new name.
    let id = stack.tree.get_by(STORAGE, "file-docx").unwrap().id;
    assert!(stack.tree.rename(&id, "moved.docx"));
    assert_eq!(check_file_info(&f).await.0, 404);
    let (s, info) = check_file_info(&f).await;
    assert_eq!((s, &info["BaseFileName"]), (200, &"moved.docx".into()));
    assert_eq!(opens(), before + 1);
}

/// v11.5.0's `openinapp` calls every storage error "not found": the gateway tells a REVA outage
/// (503, try again) and a wopiserver cut off from storage (502) from a file that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_tells_an_outage_from_a_missing_file() {
    let (stack, _gw) = start(StackOptions::default()).await;
    // REVA goes down right after the gateway's own Stat: the wopiserver's fails.
    stack.reva.stat_outage_after(Some(1));
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    stack.reva.stat_outage_after(None);
    // The wopiserver alone cut off from REVA: its "not found" is its own failure.
    stack.wopiserver.set_storage_unreachable(true);
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_error")),
        "{body}"
    );
    stack.wopiserver.set_storage_unreachable(false);
    let (status, body) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200, "{body}");
}
