//! The demo a person clicks through, in a real headless browser (Debian's Chromium, driven over
//! WebDriver by its chromedriver): the editor page loads the document through the gateway, the
//! text shows, an edit is saved (Lock, PutFile, Unlock through the gateway) and is in the fake
//! storage afterwards. SKIPPED only when no browser is installed (`scripts/setup.sh` installs
//! one). `WOPIGATE_SCREENSHOT=<file.png>` keeps a screenshot of the page.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use wopigate_testkit::demo_office::{DemoStack, SAMPLE_NAME, SAMPLE_TEXT};
use wopigate_testkit::stack::StackOptions;

use crate::{client, eventually};

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// chromedriver with a headless Chromium session; `None` when either is missing.
    async fn start() -> Option<Browser> {
        let installed = |c: &str| Command::new(c).arg("--version").output().is_ok();
        if !installed("chromedriver") || !installed("chromium") {
            wopigate_testkit::skip_without("chromium with chromedriver", "the demo browser test");
            return None;
        }
        let port = wopigate_testkit::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
        };
        eventually("chromedriver ready", Duration::from_secs(20), async || {
            let r = client()
                .get(format!("{}/status", b.base))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=900,600"],
        }}}});
        let v = b.call("POST", "/session", caps).await;
        b.session = v["sessionId"].as_str().expect("a session").to_owned();
        Some(b)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => client().get(url),
            "DELETE" => client().delete(url),
            _ => client().post(url).json(&body),
        };
        let r = req.send().await.expect("chromedriver answers");
        let status = r.status();
        let v: Value = r.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body).await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .session(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_owned()
    }

    async fn text_of(&self, css: &str) -> String {
        let id = self.element(css).await;
        let v = self
            .session("GET", &format!("/element/{id}/text"), Value::Null)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn value_of(&self, css: &str) -> String {
        let id = self.element(css).await;
        let path = format!("/element/{id}/property/value");
        let v = self.session("GET", &path, Value::Null).await;
        v.as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_opens_edits_and_saves_in_the_demo_editor() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = DemoStack::start(StackOptions::default()).await;
    let config = demo.stack.write_config();
    let _gw = crate::start_gateway(&demo.stack, &config).await;
    let link = demo.open_link().await.unwrap();

    // The page loads the document through the gateway and shows it.
    browser.session("POST", "/url", json!({"url": link})).await;
    assert_eq!(browser.text_of("#name").await, SAMPLE_NAME);
    assert_eq!(
        browser.text_of("#size").await,
        SAMPLE_TEXT.len().to_string()
    );
    assert_eq!(browser.value_of("#text").await, SAMPLE_TEXT);
    if let Ok(path) = std::env::var("WOPIGATE_SCREENSHOT") {
        let png = browser.session("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    // An edit, typed and saved as a person would.
    demo.stack.wopiserver.clear_requests();
    let edited = "Edited in a real browser, saved over WOPI.\n";
    let text = browser.element("#text").await;
    browser
        .session("POST", &format!("/element/{text}/clear"), json!({}))
        .await;
    browser
        .session(
            "POST",
            &format!("/element/{text}/value"),
            json!({"text": edited}),
        )
        .await;
    let save = browser.element("#save").await;
    browser
        .session("POST", &format!("/element/{save}/click"), json!({}))
        .await;

    // The page comes back with the saved version, read through the gateway again.
    let shown = eventually("the saved page", Duration::from_secs(10), async || {
        let id = browser
            .session(
                "POST",
                "/elements",
                json!({"using": "css selector", "value": "#text"}),
            )
            .await;
        id.as_array().filter(|a| !a.is_empty())?;
        Some(browser.value_of("#text").await).filter(|v| v == edited)
    })
    .await;
    assert_eq!(shown, edited);
    assert_eq!(demo.sample_text(), edited, "in the storage");
    let overrides: Vec<String> = demo
        .stack
        .wopiserver
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| r.header("x-wopi-override").map(str::to_owned))
        .collect();
    assert_eq!(
        overrides,
        ["LOCK", "PUT", "UNLOCK"],
        "saved the way office apps save"
    );
    browser.session("DELETE", "", Value::Null).await;
}
