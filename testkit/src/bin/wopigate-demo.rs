//! The demo stack: the real gateway in front of the test doubles (IdP, REVA, wopiserver,
//! a small web editor as office app, Collabora- and Microsoft-shaped discovery), all on
//! 127.0.0.1. Prints a link that opens `welcome.txt` in the editor in a browser (read and saved
//! over WOPI through the gateway) and a ready-to-run `curl` for the open API.
//!
//! `scripts/demo.sh [PORT]` or `cargo run --features testkit --bin wopigate-demo [PORT]`
//! (default port 8080).

use std::process::ExitCode;
use std::time::Duration;

use wopigate::ids::encode_legacy;
use wopigate_testkit::demo_office::DemoStack;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};

struct Ready {
    config: std::path::PathBuf,
    idp: String,
    gateway: String,
    file_id: String,
}

fn main() -> ExitCode {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let (tx, rx) = std::sync::mpsc::channel::<Ready>();
    // The doubles live on their own runtime; the gateway's main stays synchronous.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let demo = DemoStack::start(StackOptions {
                gateway_port: port,
                // The demo's gateway listens on the port it prints.
                tap: false,
                ..Default::default()
            })
            .await;
            let stack = &demo.stack;
            let file_id = encode_legacy(STORAGE, "file-docx");
            let _ = tx.send(Ready {
                config: stack.write_config(),
                idp: stack.idp.issuer(),
                gateway: stack.gateway_url(),
                file_id: file_id.clone(),
            });
            demo_open(&demo, &file_id).await;
            std::future::pending::<()>().await;
        });
    });
    let Ok(ready) = rx.recv() else {
        eprintln!("the demo doubles did not start");
        return ExitCode::FAILURE;
    };
    println!(
        "wopigate demo: gateway {} (IdP {}, config {})",
        ready.gateway,
        ready.idp,
        ready.config.display()
    );
    println!("Open report.docx yourself:");
    println!(
        "  TOKEN=$(curl -s -X POST '{}/token?username=alice' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')",
        ready.idp
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" '{}/api/v0/wopi/open?fileId={}'",
        ready.gateway, ready.file_id
    );
    let config = match wopigate::config::Config::load(&ready.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    wopigate::telemetry::init(false);
    match wopigate::app::run(&ready.config, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for the gateway, prints the editor link for `welcome.txt`, opens `report.docx` once
/// through the legacy API and prints the answer.
async fn demo_open(demo: &DemoStack, file_id: &str) {
    let stack: &Stack = &demo.stack;
    let client =
        match wopigate::http_client::client(Duration::from_secs(2), Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot build an HTTP client: {e}");
                return;
            }
        };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", stack.gateway_port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match demo.open_link().await {
        Ok(link) => {
            println!(
                "Open welcome.txt in the demo editor (read and saved over WOPI through the gateway):"
            );
            println!("  {link}");
        }
        Err(e) => println!("demo open of welcome.txt failed: {e}"),
    }
    let url = format!("{}/api/v0/wopi/open?fileId={file_id}", stack.gateway_url());
    match client
        .get(url)
        .bearer_auth(stack.idp.token("alice"))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            println!("Demo open of report.docx as alice: HTTP {status}");
            println!(
                "  app URL: {}",
                body["wopiclienturl"].as_str().unwrap_or("-")
            );
            println!(
                "  access token TTL (ms since epoch): {}",
                body["accesstokenttl"]
            );
        }
        Err(e) => println!("demo open failed: {e}"),
    }
}
