//! The suite-wide response scan is real: a secret that does reach a client through the gateway
//! is found by the stack's response tap, even inside a file body split across reads.

use wopigate_testkit::hygiene;
use wopigate_testkit::stack::StackOptions;
use wopigate_testkit::tree::Content;

use crate::{open_as_alice, start, wopi_get, wopi_src_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_tap_finds_a_secret_in_a_response() {
    let (stack, _gw) = start(StackOptions::default()).await;
    let tap = stack.tap.as_ref().expect("stacks are tapped by default");
    // A file whose content holds something registered as never to be sent, 3 MB in.
    let planted = format!("planted-secret-{}", uuid::Uuid::new_v4().simple());
    hygiene::register("planted secret", &planted);
    let mut content = vec![b'.'; 3_000_000];
    content.extend_from_slice(planted.as_bytes());
    content.extend_from_slice(&[b'.'; 1000]);
    let mut e = stack.tree.get_by("storage-1", "file-docx").unwrap();
    e.content = Content::Bytes(content.clone());
    stack.tree.insert(e);

    let (_, body) = open_as_alice(&stack, "file-docx").await;
    assert!(tap.take_leaks().is_empty(), "an open answer held a secret");
    let url = format!(
        "{}{}/contents",
        stack.gateway_url(),
        wopi_src_path(body["wopiclienturl"].as_str().unwrap())
    );
    let scanned_before = tap.scanned_bytes();
    let got = wopi_get(&url, body["accesstoken"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), content.len());
    assert!(tap.scanned_bytes() - scanned_before >= content.len() as u64);
    assert_eq!(tap.take_leaks(), vec!["planted secret"]);
    eprintln!(
        "response tap: {} connections, {} bytes read",
        tap.connections(),
        tap.scanned_bytes()
    );
}
