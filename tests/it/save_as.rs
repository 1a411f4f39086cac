//! PutRelativeFile served by the gateway (issue #19; wopi.md §4.4): every row of the header
//! table, what lands in the fake REVA, what the wopiserver saw (never a PUT_RELATIVE), and the
//! returned `Url` working at once.

use std::time::Duration;

use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::tree::Content;

use crate::{WopiFile as File, client, eventually, open_wopi_file as open, start};

/// CheckFileInfo of `f` (200 or the test fails).
async fn check_file_info(f: &File) -> serde_json::Value {
    let (status, info) = crate::check_file_info(f).await;
    assert_eq!(status, 200);
    info
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: serde_json::Value,
}

async fn put_relative(f: &File, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut r = client()
        .post(&f.url)
        .query(&[("access_token", f.token.as_str())])
        .header("X-WOPI-Override", "PUT_RELATIVE");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = match r.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: 0,
                headers: Default::default(),
                json: serde_json::json!({ "transport": e.to_string() }),
            };
        }
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        json,
    }
}

/// The entry named `name` in alice's home, if any.
fn in_home(stack: &Stack, name: &str) -> Option<wopigate_testkit::tree::Entry> {
    stack.tree.get_by_path(&format!("/home/{name}"))
}

fn bytes(e: &wopigate_testkit::tree::Entry) -> Vec<u8> {
    match &e.content {
        Content::Bytes(b) => b.clone(),
        Content::Synthetic(n) => panic!("synthetic {n}"),
    }
}

fn no_put_relative_forwarded(stack: &Stack) {
    assert!(
        !stack
            .wopiserver
            .requests()
            .iter()
            .any(|r| r.header("x-wopi-override") == Some("PUT_RELATIVE")),
        "a PUT_RELATIVE reached the wopiserver"
    );
}

/// The new file's `Url` works at once: CheckFileInfo, GetFile, Lock/PutFile/Unlock.
async fn url_works(stack: &Stack, a: &Answer, want: &[u8]) {
    let url = url::Url::parse(a.json["Url"].as_str().unwrap()).unwrap();
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "access_token")
        .unwrap()
        .1
        .into_owned();
    assert!(
        token.starts_with("wg"),
        "a gateway token, not the wopiserver's"
    );
    let base = format!("{}{}", stack.gateway_url(), url.path());
    let f = File {
        url: base.clone(),
        token,
    };
    let info = check_file_info(&f).await;
    assert_eq!(info["BaseFileName"], a.json["Name"]);
    assert_eq!(info["UserCanNotWriteRelative"], false);
    let r = client()
        .get(format!("{base}/contents"))
        .query(&[("access_token", f.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), want);
    for (op, suffix, body) in [
        ("LOCK", "", Vec::new()),
        ("PUT", "/contents", b"edited after save as".to_vec()),
        ("UNLOCK", "", Vec::new()),
    ] {
        let r = client()
            .post(format!("{base}{suffix}"))
            .query(&[("access_token", f.token.as_str())])
            .header("X-WOPI-Override", op)
            .header("X-WOPI-Lock", "after-save-as")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{op}");
    }
    let name = a.json["Name"].as_str().unwrap();
    assert_eq!(
        bytes(&in_home(stack, name).unwrap()),
        b"edited after save as"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggested_names_are_adjusted_and_the_new_file_works_at_once() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let f = open(&stack, "file-docx").await;

    // Extension only: the source's base name with it.
    let a = put_relative(
        &f,
        &[("X-WOPI-SuggestedTarget", ".pdf")],
        b"%PDF-1.7".to_vec(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["Name"], "report.pdf");
    // No app opens PDF: no page to open it in.
    assert!(a.json.get("HostEditUrl").is_none(), "{}", a.json);
    assert_eq!(bytes(&in_home(&stack, "report.pdf").unwrap()), b"%PDF-1.7");
    // A full name (UTF-7), then the same again: a free variant, never 409.
    let copy = "Copie de r+AOk-sum+AOk-.docx";
    let a = put_relative(&f, &[("X-WOPI-SuggestedTarget", copy)], b"one".to_vec()).await;
    assert_eq!(a.json["Name"], "Copie de résumé.docx");
    for k in ["HostEditUrl", "HostViewUrl"] {
        let u = a.json[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k}: {}", a.json));
        assert!(u.contains("WOPISrc="), "{u}");
    }
    let a = put_relative(&f, &[("X-WOPI-SuggestedTarget", copy)], b"two".to_vec()).await;
    assert_eq!(
        (a.status, a.json["Name"].as_str()),
        (200, Some("Copie de résumé (2).docx"))
    );
    assert_eq!(
        bytes(&in_home(&stack, "Copie de résumé.docx").unwrap()),
        b"one"
    );
    // The source's own name: adjusted too; illegal characters replaced.
    let a = put_relative(
        &f,
        &[("X-WOPI-SuggestedTarget", "report.docx")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.json["Name"], "report (2).docx");
    let a = put_relative(
        &f,
        &[("X-WOPI-SuggestedTarget", "a/b?.docx")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.json["Name"], "a_b_.docx");
    // The conversion context (Office for the web converting a legacy file).
    let a = put_relative(
        &f,
        &[
            ("X-WOPI-SuggestedTarget", ".odt"),
            ("X-WOPI-FileConversion", ""),
        ],
        b"converted".to_vec(),
    )
    .await;
    assert_eq!(
        (a.status, a.json["Name"].as_str()),
        (200, Some("report.odt"))
    );
    // An empty body is an empty file.
    let a = put_relative(&f, &[("X-WOPI-SuggestedTarget", ".txt")], Vec::new()).await;
    assert_eq!(a.status, 200);
    assert!(bytes(&in_home(&stack, "report.txt").unwrap()).is_empty());

    let a = put_relative(
        &f,
        &[("X-WOPI-SuggestedTarget", ".xlsx")],
        b"sheet".to_vec(),
    )
    .await;
    url_works(&stack, &a, b"sheet").await;
    // The source is untouched; the wopiserver never saw a PUT_RELATIVE, only PutFiles.
    assert_eq!(
        bytes(&stack.tree.get_by(STORAGE, "file-docx").unwrap()),
        b"hello, world"
    );
    no_put_relative_forwarded(&stack);
    let answer = a.json.to_string();
    assert!(
        !answer.contains("eyJ"),
        "no JWT (wopiserver or REVA token) in {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_names_are_exact_conflicts_and_overwrites_follow_the_table() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let f = open(&stack, "file-docx").await;
    let relative = |name: &'static str| ("X-WOPI-RelativeTarget", name);

    let a = put_relative(&f, &[relative("exact.docx")], b"exact".to_vec()).await;
    assert_eq!(
        (a.status, a.json["Name"].as_str()),
        (200, Some("exact.docx"))
    );
    // Illegal: 400 with a valid proposal (UTF-7); nothing created.
    let before = stack
        .tree
        .children(&stack.tree.get_by(STORAGE, "home").unwrap().id)
        .len();
    let a = put_relative(&f, &[relative("bad:name.docx")], b"x".to_vec()).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.headers["x-wopi-validrelativetarget"], "bad+AF8-name.docx");
    // Taken: 409 with a free proposal.
    let a = put_relative(&f, &[relative("notes.odt")], b"x".to_vec()).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.headers["x-wopi-validrelativetarget"], "notes (2).odt");
    assert_eq!(bytes(&in_home(&stack, "notes.odt").unwrap()), b"odt bytes");
    // Both headers, neither header: 400.
    let a = put_relative(
        &f,
        &[relative("x.docx"), ("X-WOPI-SuggestedTarget", ".docx")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(put_relative(&f, &[], b"x".to_vec()).await.status, 400);
    // X-WOPI-Size that is not the body's.
    let a = put_relative(
        &f,
        &[relative("sized.docx"), ("X-WOPI-Size", "99")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.status, 400);
    let after = stack
        .tree
        .children(&stack.tree.get_by(STORAGE, "home").unwrap().id)
        .len();
    assert_eq!(before, after, "refused requests create nothing");

    // Overwrite allowed: the file keeps its id, gets the body, and is unlocked afterwards.
    let odt_id = in_home(&stack, "notes.odt").unwrap().id;
    let a = put_relative(
        &f,
        &[
            relative("notes.odt"),
            ("X-WOPI-OverwriteRelativeTarget", "True"),
        ],
        b"overwritten".to_vec(),
    )
    .await;
    assert_eq!(
        (a.status, a.json["Name"].as_str()),
        (200, Some("notes.odt")),
        "{}",
        a.json
    );
    let e = in_home(&stack, "notes.odt").unwrap();
    assert_eq!((e.id.clone(), bytes(&e)), (odt_id, b"overwritten".to_vec()));
    let n = open(&stack, "file-odt").await;
    let r = client()
        .post(&n.url)
        .query(&[("access_token", n.token.as_str())])
        .header("X-WOPI-Override", "GET_LOCK")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-wopi-lock"],
        "",
        "the gateway's lock was released"
    );

    // Overwrite of a locked target: 409 with its lock; the content stays.
    let r = client()
        .post(&n.url)
        .query(&[("access_token", n.token.as_str())])
        .header("X-WOPI-Override", "LOCK")
        .header("X-WOPI-Lock", "someone-elses-lock")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a = put_relative(
        &f,
        &[
            relative("notes.odt"),
            ("X-WOPI-OverwriteRelativeTarget", "true"),
        ],
        b"must not land".to_vec(),
    )
    .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.headers["x-wopi-lock"], "someone-elses-lock");
    assert_eq!(
        bytes(&in_home(&stack, "notes.odt").unwrap()),
        b"overwritten"
    );
    no_put_relative_forwarded(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_read_only_tokens_and_checkfileinfo_agree() {
    let (stack, _gw) = start(StackOptions::default()).await;
    // A read-only token: CheckFileInfo says so, PutRelativeFile is 501.
    let ro = open(&stack, "file-ro").await;
    let info = check_file_info(&ro).await;
    assert_eq!(info["UserCanNotWriteRelative"], true);
    let a = put_relative(&ro, &[("X-WOPI-SuggestedTarget", ".docx")], b"x".to_vec()).await;
    assert_eq!(a.status, 501);
    // A writable token in a folder the user may not write to: 501, nothing created.
    let f = open(&stack, "file-docx").await;
    let info = check_file_info(&f).await;
    assert_eq!(info["UserCanNotWriteRelative"], false);
    stack
        .tree
        .set_perms(STORAGE, "home", wopigate_testkit::tree::read_only_perms());
    let a = put_relative(&f, &[("X-WOPI-SuggestedTarget", ".pdf")], b"x".to_vec()).await;
    assert_eq!(a.status, 501, "{}", a.json);
    assert!(in_home(&stack, "report.pdf").is_none());
    // A file shared with alice in a folder she cannot even see: 501, not 404.
    stack.tree.add_folder(STORAGE, "bobs-folder", None, "bob");
    stack.tree.set_owner(STORAGE, "bobs-folder", "bob-sub");
    stack.tree.add_file(
        STORAGE,
        "shared-docx",
        Some("bobs-folder"),
        "shared.docx",
        Content::Bytes(b"shared".to_vec()),
    );
    let shared = open(&stack, "shared-docx").await;
    let a = put_relative(
        &shared,
        &[("X-WOPI-SuggestedTarget", ".pdf")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.status, 501, "{}", a.json);
    assert!(stack.tree.get_by_path("/bob/shared.pdf").is_none());
    no_put_relative_forwarded(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wopiserver_tokens_get_the_same_service() {
    let (stack, _gw) = start(StackOptions {
        wrap_tokens: false,
        ..Default::default()
    })
    .await;
    let f = open(&stack, "file-docx").await;
    assert!(f.token.starts_with("eyJ"), "the wopiserver's own token");
    // CheckFileInfo passed through says what the gateway does with each token.
    assert_eq!(check_file_info(&f).await["UserCanNotWriteRelative"], false);
    let ro = open(&stack, "file-ro").await;
    assert_eq!(
        check_file_info(&ro).await["UserCanNotWriteRelative"],
        true,
        "read-only token"
    );
    let a = put_relative(&ro, &[("X-WOPI-SuggestedTarget", ".docx")], b"x".to_vec()).await;
    assert_eq!(a.status, 501);
    let a = put_relative(&f, &[("X-WOPI-SuggestedTarget", ".pdf")], b"pdf".to_vec()).await;
    assert_eq!(
        (a.status, a.json["Name"].as_str()),
        (200, Some("report.pdf")),
        "{}",
        a.json
    );
    url_works(&stack, &a, b"pdf").await;
    no_put_relative_forwarded(&stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_and_an_aborted_one_leaves_nothing() {
    let (stack, gw) = start(StackOptions {
        tap: false,
        ..Default::default()
    })
    .await;
    let f = open(&stack, "file-docx").await;
    // 48 MiB streamed in 64 KiB chunks: the gateway's memory stays flat all along (its peak,
    // sampled every 20 ms, not only its size afterwards).
    const LEN: usize = 48 << 20;
    let peak = wopigate_testkit::gateway::PeakRss::start(gw.pid());
    let chunks = futures_util::stream::iter(
        (0..LEN / 65536)
            .map(|i| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![(i % 251) as u8; 65536]))),
    );
    let resp = client()
        .post(&f.url)
        .query(&[("access_token", f.token.as_str())])
        .header("X-WOPI-Override", "PUT_RELATIVE")
        .header("X-WOPI-SuggestedTarget", "big.docx")
        .header("X-WOPI-Size", LEN.to_string())
        .header("Content-Length", LEN.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let grew = peak.growth();
    assert!(
        grew < 16 << 20,
        "RSS peaked {} MiB above the start",
        grew >> 20
    );
    assert_eq!(bytes(&in_home(&stack, "big.docx").unwrap()).len(), LEN);

    // A client that stops halfway: the wopiserver sees the upload break off (and so stores
    // nothing), and the file created for it is removed again.
    let s = half_a_put_relative(&f, "X-WOPI-RelativeTarget: aborted.docx\r\n").await;
    eventually(
        "the upload reached the new file",
        Duration::from_secs(10),
        async || in_home(&stack, "aborted.docx").map(|_| ()),
    )
    .await;
    let target = in_home(&stack, "aborted.docx").unwrap().id.opaque_id;
    upload_started(&stack, &target).await;
    drop(s);
    broken_upload_seen(&stack, &target).await;
    eventually(
        "the half-uploaded file removed",
        Duration::from_secs(10),
        async || in_home(&stack, "aborted.docx").is_none().then_some(()),
    )
    .await;
    gw.logs_with("removed the file of a failed PutRelativeFile", 1)
        .await;

    // The same over an existing document (overwrite): it stays as it was, and unlocked.
    let odt = in_home(&stack, "notes.odt").unwrap();
    let s = half_a_put_relative(
        &f,
        "X-WOPI-RelativeTarget: notes.odt\r\nX-WOPI-OverwriteRelativeTarget: true\r\n",
    )
    .await;
    upload_started(&stack, &odt.id.opaque_id).await;
    drop(s);
    broken_upload_seen(&stack, &odt.id.opaque_id).await;
    let after = in_home(&stack, "notes.odt").unwrap();
    assert_eq!((bytes(&after), after.version), (bytes(&odt), odt.version));
    eventually(
        "the gateway's lock released",
        Duration::from_secs(10),
        async || {
            stack
                .wopiserver
                .lock_of(STORAGE, &odt.id.opaque_id)
                .is_none()
                .then_some(())
        },
    )
    .await;
    no_put_relative_forwarded(&stack);
}

/// Starts a PutRelativeFile of 1 000 000 bytes over raw TCP and sends 200 000 of them; the
/// connection is returned to be dropped mid-body.
async fn half_a_put_relative(f: &File, target_headers: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let url = url::Url::parse(&f.url).unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", url.port().unwrap()))
        .await
        .unwrap();
    let head = format!(
        "POST {}?access_token={} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: PUT_RELATIVE\r\n{target_headers}Content-Length: 1000000\r\n\r\n",
        url.path(),
        crate::enc(&f.token)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'a'; 200_000]).await.unwrap();
    s
}

/// The PutFile of `opaque_id` is on its way into the wopiserver.
async fn upload_started(stack: &Stack, opaque_id: &str) {
    eventually(
        "the upload reached the wopiserver",
        Duration::from_secs(10),
        async || (!crate::puts_to(stack, opaque_id).is_empty()).then_some(()),
    )
    .await;
}

/// The wopiserver received the PutFile of the file `opaque_id` as a body that broke off.
async fn broken_upload_seen(stack: &Stack, opaque_id: &str) {
    eventually(
        "the wopiserver saw the upload break off",
        Duration::from_secs(10),
        async || {
            crate::puts_to(stack, opaque_id)
                .iter()
                .any(|r| !r.body_complete && r.body_len < 1_000_000)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_as_failing_after_the_file_was_created_leaves_nothing_behind() {
    let (stack, gw) = start(StackOptions::default()).await;
    let f = open(&stack, "file-docx").await;
    // REVA goes away between creating the file and looking it up.
    stack.reva.fail_next_stat_of("half-made.docx");
    let a = put_relative(
        &f,
        &[("X-WOPI-RelativeTarget", "half-made.docx")],
        b"never stored".to_vec(),
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.json);
    assert!(
        stack.reva.calls().iter().any(|c| c.method == "TouchFile"),
        "the file was created first"
    );
    eventually(
        "the created file removed again",
        Duration::from_secs(10),
        async || in_home(&stack, "half-made.docx").is_none().then_some(()),
    )
    .await;
    gw.logs_with("removed the file of a failed PutRelativeFile", 1)
        .await;
    // The name is free again: the next Save As under it works.
    let a = put_relative(
        &f,
        &[("X-WOPI-RelativeTarget", "half-made.docx")],
        b"stored".to_vec(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(
        bytes(&in_home(&stack, "half-made.docx").unwrap()),
        b"stored"
    );
}
