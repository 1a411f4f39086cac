//! Issue #26: the operator's control point. Revocations by user, file and time end sessions at
//! once (both token kinds, open and WOPI calls alike) and spare everyone else; the admin API
//! lists sessions and locks, refuses a missing or wrong bearer and does not exist on the public
//! listener; a lock left by a vanished office app is released and the next session saves.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

use crate::{WopiFile as File, client, enc, legacy_open, open_wopi_file as open, start_gateway};

pub const ADMIN_TOKEN: &str = "admin-bearer-for-the-tests-0123456789abcdef";

/// The stack's configuration with the admin API on, `extra` lines added to sections
/// (`("[tokens]", "recheck_seconds = 1")`), written to `name`.
pub fn config_with(stack: &Stack, name: &str, extra: &[(&str, &str)]) -> PathBuf {
    let token = stack.dir().join("admin.token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    // Never in a log or an answer: every gateway's log and every tapped response is scanned.
    wopigate_testkit::hygiene::register("admin bearer", ADMIN_TOKEN);
    let mut text = stack.config_toml().replace(
        "[admin]\n",
        &format!("[admin]\ntoken_file = {:?}\n", token.display().to_string()),
    );
    for (section, line) in extra {
        text = text.replace(&format!("{section}\n"), &format!("{section}\n{line}\n"));
    }
    let path = stack.dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An admin API call with the right bearer: status and JSON.
pub async fn admin(admin_url: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = client()
        .request(method.parse().unwrap(), format!("{admin_url}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// CheckFileInfo with the session's token: status and error code (if any).
pub async fn check_file_info(f: &File) -> (u16, String) {
    let resp = client()
        .get(&f.url)
        .query(&[("access_token", f.token.as_str())])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn open_as(stack: &Stack, user: &str, opaque: &str) -> (u16, Value) {
    let id = wopigate::ids::encode_legacy(STORAGE, opaque);
    legacy_open(stack, &stack.idp.token(user), &id).await
}

/// The session an open's answer starts: its WOPI URL on the gateway and its token.
pub fn file_of(stack: &Stack, body: &Value) -> File {
    File {
        url: format!(
            "{}{}",
            stack.gateway_url(),
            crate::wopi_src_path(body["wopiclienturl"].as_str().unwrap())
        ),
        token: body["accesstoken"].as_str().unwrap().to_owned(),
    }
}

/// A login made after a revocation: tokens record seconds, and a login in the revocation's own
/// second counts as before it.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn started(opts: StackOptions) -> (Stack, GatewayProcess) {
    started_with(opts, &[]).await
}

/// A stack and a gateway with the admin API on and `extra` lines in its sections.
pub async fn started_with(opts: StackOptions, extra: &[(&str, &str)]) -> (Stack, GatewayProcess) {
    let stack = Stack::start(opts).await;
    let config = config_with(&stack, "control.toml", extra);
    let gw = start_gateway(&stack, &config).await;
    (stack, gw)
}

/// `POST /admin/revocations` with `body`: status and JSON.
pub async fn revoke(admin_url: &str, body: Value) -> (u16, Value) {
    admin(admin_url, "POST", "/admin/revocations", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_end_sessions_by_file_user_and_time_and_spare_the_rest() {
    let (stack, gw) = started(StackOptions::default()).await;
    let admin_url = stack.admin_url();
    let docx = open(&stack, "file-docx").await;
    let odt = open(&stack, "file-odt").await;
    let (s, body) = open_as(&stack, "bob", "file-bob").await;
    assert_eq!(s, 200, "{body}");
    let bob = file_of(&stack, &body);
    for f in [&docx, &odt, &bob] {
        assert_eq!(check_file_info(f).await.0, 200);
    }

    // The API: no bearer, a wrong one, and the public listener.
    for bearer in [None, Some("wrong"), Some(&ADMIN_TOKEN[1..])] {
        let mut r = client().get(format!("{admin_url}/admin/sessions"));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{bearer:?}");
    }
    for path in ["/admin/sessions", "/admin/revocations"] {
        let r = client()
            .get(format!("{}{path}", stack.gateway_url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} on the public listener");
    }
    // No [oidc] logout_clients: no back-channel logout endpoint.
    let r = client()
        .post(format!("{}/oidc/backchannel-logout", stack.gateway_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("logout_token=x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Sessions as the gateway saw them.
    let (s, all) = admin(&admin_url, "GET", "/admin/sessions", None).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["sessions"].as_array().unwrap().len(), 3, "{all}");
    let (_, mine) = admin(&admin_url, "GET", "/admin/sessions?user=alice-sub", None).await;
    let mine = mine["sessions"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|s| s["app"] != "" && s["instance"] != ""));
    let (_, one) = admin(
        &admin_url,
        "GET",
        &format!(
            "/admin/sessions?file={}",
            enc(&format!("{STORAGE}!file-odt"))
        ),
        None,
    )
    .await;
    assert_eq!(one["sessions"].as_array().unwrap().len(), 1, "{one}");
    for token in [&docx.token, &odt.token, &bob.token] {
        assert!(!all.to_string().contains(token.as_str()), "no token listed");
    }

    // A file: its sessions end, the others go on.
    let (s, e) = revoke(&admin_url, json!({"file": format!("{STORAGE}$!file-odt")})).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["revocation"]["scope"], "file");
    assert_eq!(check_file_info(&odt).await, (401, "revoked".into()));
    assert_eq!(check_file_info(&docx).await.0, 200);

    // A user: every token of theirs, and their OIDC token's opens; bob goes on.
    let old_login = stack.idp.token("alice");
    let (s, _) = revoke(&admin_url, json!({"user": "alice-sub"})).await;
    assert_eq!(s, 201);
    assert_eq!(check_file_info(&docx).await, (401, "revoked".into()));
    assert_eq!(check_file_info(&bob).await.0, 200);
    let id = wopigate::ids::encode_legacy(STORAGE, "file-docx");
    let (s, b) = legacy_open(&stack, &old_login, &id).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("revoked")), "{b}");
    // A login after the revocation works.
    next_second().await;
    let again = open(&stack, "file-docx").await;
    assert_eq!(check_file_info(&again).await.0, 200);

    // Everything issued before now: bob too; a new login still works.
    let before = wopigate::tokens::now();
    let (s, _) = revoke(&admin_url, json!({ "before": before })).await;
    assert_eq!(s, 201);
    assert_eq!(check_file_info(&bob).await, (401, "revoked".into()));
    assert_eq!(check_file_info(&again).await.0, 401);
    next_second().await;
    let fresh = open(&stack, "file-docx").await;
    assert_eq!(check_file_info(&fresh).await.0, 200);

    // The set as listed, and bad requests refused with a reason.
    let (_, list) = admin(&admin_url, "GET", "/admin/revocations", None).await;
    let scopes: Vec<&str> = list["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes.len(), 3, "{list}");
    for bad in [
        json!({}),
        json!({"user": "a", "file": "b"}),
        json!({"file": "nonsense"}),
    ] {
        let (s, b) = revoke(&admin_url, bad.clone()).await;
        assert_eq!((s, b["code"].as_str()), (400, Some("bad_request")), "{bad}");
    }
    let revoked = crate::gauge(&admin_url, "wopigate_revocations").await;
    assert_eq!(revoked, Some(3.0));
    let audit = gw.logs_with("\"revoke\"", 3).await;
    assert!(!audit.contains(ADMIN_TOKEN), "the bearer is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wopiserver_tokens_are_revoked_by_their_user_and_file_too() {
    let (stack, _gw) = started(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let admin_url = stack.admin_url();
    let docx = open(&stack, "file-docx").await;
    let odt = open(&stack, "file-odt").await;
    assert!(!docx.token.starts_with("wg1."), "a wopiserver token");
    assert_eq!(check_file_info(&docx).await.0, 200);
    let (s, _) = revoke(&admin_url, json!({"file": format!("{STORAGE}!file-docx")})).await;
    assert_eq!(s, 201);
    assert_eq!(check_file_info(&docx).await, (401, "revoked".into()));
    assert_eq!(check_file_info(&odt).await.0, 200);
    let (s, _) = revoke(&admin_url, json!({"user": "alice-sub"})).await;
    assert_eq!(s, 201);
    assert_eq!(check_file_info(&odt).await, (401, "revoked".into()));
}

/// The sum of a metric's series whose line starts with `prefix`.
pub async fn series_sum(admin_url: &str, prefix: &str) -> f64 {
    let text = client()
        .get(format!("{admin_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// PutFile of `body` under `lock`: the status.
pub async fn put(f: &File, lock: &str, body: &'static str) -> u16 {
    client()
        .post(format!("{}/contents", f.url))
        .query(&[("access_token", f.token.as_str())])
        .header("X-WOPI-Override", "PUT")
        .header("X-WOPI-Lock", lock)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A WOPI lock call with the session's token.
pub async fn lock_call(f: &File, op: &str, lock: &str) -> u16 {
    client()
        .post(&f.url)
        .query(&[("access_token", f.token.as_str())])
        .header("X-WOPI-Override", op)
        .header("X-WOPI-Lock", lock)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_vanished_office_app_is_released_and_the_next_session_saves() {
    let (stack, gw) = started(StackOptions::default()).await;
    let admin_url = stack.admin_url();
    let gone = open(&stack, "file-docx").await;
    assert_eq!(lock_call(&gone, "LOCK", "lock-of-a-crashed-app").await, 200);
    assert_eq!(
        lock_call(&gone, "REFRESH_LOCK", "lock-of-a-crashed-app").await,
        200
    );
    // The office app vanishes; the next session finds the file locked.
    let next = open(&stack, "file-docx").await;
    assert_eq!(lock_call(&next, "LOCK", "next-session").await, 409);
    let (_, locks) = admin(&admin_url, "GET", "/admin/locks?user=alice-sub", None).await;
    let list = locks["locks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{locks}");
    assert_eq!(list[0]["lock_id"], "lock-of-a-crashed-app");
    assert_eq!(list[0]["file"], format!("{STORAGE}!file-docx").as_str());
    assert!(list[0].get("holder_claim").is_none());
    assert!(list[0]["expires"].as_u64().unwrap() > list[0]["since"].as_u64().unwrap());
    assert_eq!(series_sum(&admin_url, "wopigate_locks{").await, 1.0);

    let file = json!({"file": format!("{STORAGE}!file-docx")});
    let (s, r) = admin(
        &admin_url,
        "POST",
        "/admin/locks/release",
        Some(file.clone()),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(stack.wopiserver.lock_of(STORAGE, "file-docx"), None);
    let (s, r) = admin(&admin_url, "POST", "/admin/locks/release", Some(file)).await;
    assert_eq!((s, r["code"].as_str()), (404, Some("not_found")), "{r}");

    // The next session locks, saves and unlocks.
    assert_eq!(lock_call(&next, "LOCK", "next-session").await, 200);
    assert_eq!(
        put(&next, "next-session", "saved after the release").await,
        200
    );
    assert_eq!(lock_call(&next, "UNLOCK", "next-session").await, 200);
    let (_, locks) = admin(&admin_url, "GET", "/admin/locks", None).await;
    assert_eq!(locks["locks"].as_array().unwrap().len(), 0, "{locks}");
    assert_eq!(series_sum(&admin_url, "wopigate_locks{").await, 0.0);
    assert_eq!(
        series_sum(
            &admin_url,
            "wopigate_lock_releases_total{outcome=\"released\"}"
        )
        .await,
        1.0
    );
    let audit = gw.logs_with("release_lock", 1).await;
    assert!(audit.contains("released"), "audited:\n{audit}");
}

/// Stat calls REVA received by resource id for `opaque` (the gateway's re-checks; the
/// wopiserver Stat-s by path).
fn stats_by_id(stack: &Stack, opaque: &str) -> usize {
    stack
        .reva
        .calls()
        .iter()
        .filter(|c| c.method == "Stat")
        .filter(|c| c.resource.as_ref().is_some_and(|r| r.opaque_id == opaque))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_share_or_a_deleted_file_ends_the_session_at_the_next_recheck() {
    let (stack, _gw) = started_with(
        StackOptions::default(),
        &[("[tokens]", "recheck_seconds = 1")],
    )
    .await;
    let admin_url = stack.admin_url();
    let shared = open(&stack, "file-docx").await;
    let doomed = open(&stack, "file-odt").await;
    let kept = open(&stack, "file-new").await;
    for f in [&shared, &doomed, &kept] {
        assert_eq!(check_file_info(f).await.0, 200);
    }
    // Past the window, requests of one moment share one question to REVA.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = stats_by_id(&stack, "file-new");
    let burst = (0..8).map(|_| check_file_info(&kept));
    let answers = futures_util::future::join_all(burst).await;
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    assert_eq!(stats_by_id(&stack, "file-new") - before, 1, "single flight");
    let granted = "wopigate_access_rechecks_total{outcome=\"granted\"}";
    assert!(series_sum(&admin_url, granted).await >= 1.0);

    // The share is withdrawn, the other file deleted; nothing asks in between.
    stack.tree.set_owner(STORAGE, "file-docx", "carol-sub");
    let odt = stack.tree.get_by(STORAGE, "file-odt").unwrap();
    stack.tree.remove(&odt.id);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let upstream = stack.wopiserver.requests().len();
    assert_eq!(check_file_info(&shared).await, (404, "not_found".into()));
    assert_eq!(check_file_info(&doomed).await, (404, "not_found".into()));
    assert_eq!(
        stack.wopiserver.requests().len(),
        upstream,
        "the gateway ended both sessions itself"
    );
    let ended = "wopigate_access_rechecks_total{outcome=\"ended\"}";
    assert_eq!(series_sum(&admin_url, ended).await, 2.0);
    assert_eq!(check_file_info(&kept).await.0, 200, "the third goes on");
}

/// `wopigate admin …` against the running gateway.
fn cli(stack: &Stack, args: &[&str]) -> (bool, String, String) {
    let token = stack.dir().join("admin.token");
    let out = std::process::Command::new(crate::bin())
        .arg("admin")
        .args(["--url", &stack.admin_url()])
        .arg("--token-file")
        .arg(&token)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_lists_revokes_and_releases() {
    let (stack, _gw) = started(StackOptions::default()).await;
    let f = open(&stack, "file-docx").await;
    assert_eq!(lock_call(&f, "LOCK", "cli-lock").await, 200);
    let (ok, out, err) = cli(&stack, &["sessions", "--user", "alice-sub"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("USER") && lines[0].contains("LAST SEEN"),
        "{out}"
    );
    assert!(lines.len() == 2 && lines[1].contains("!file-docx"), "{out}");
    let (ok, out, _) = cli(&stack, &["--json", "locks"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["locks"][0]["lock_id"] == "cli-lock", "{out}");
    let (ok, out, err) = cli(
        &stack,
        &["revoke", "--file", &format!("{STORAGE}!file-odt")],
    );
    assert!(
        ok && out.contains("file") && out.contains("file-odt"),
        "{out}{err}"
    );
    let (ok, out, _) = cli(&stack, &["revocations"]);
    assert!(ok && out.lines().count() == 2, "{out}");
    let (ok, _, err) = cli(&stack, &["revoke", "--user", "a", "--sid", "b"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, out, err) = cli(
        &stack,
        &["release", "--file", &format!("{STORAGE}!file-docx")],
    );
    assert!(ok && out.contains("released lock cli-lock"), "{out}{err}");
    let (ok, _, err) = cli(
        &stack,
        &["release", "--file", &format!("{STORAGE}!file-docx")],
    );
    assert!(!ok && err.contains("404"), "{err}");
    // A wrong bearer: refused, said so, exit status 1.
    let wrong = stack.dir().join("wrong.token");
    std::fs::write(&wrong, "not-the-admin-bearer-but-long-enough-000000\n").unwrap();
    let out = std::process::Command::new(crate::bin())
        .args(["admin", "--url", &stack.admin_url(), "--token-file"])
        .arg(&wrong)
        .arg("sessions")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("401"), "{err}");
}
