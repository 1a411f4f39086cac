//! The demo's office app: a small web editor for text files that works the way a real office
//! server does. Launched with a `WOPISrc` and an access token, it reads the file over WOPI
//! *through the gateway* from its own server side (CheckFileInfo, GetFile), shows its name,
//! size and text, and saves an edit with Lock, PutFile and Unlock. Its discovery document
//! names it for `.txt` files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::Running;

/// The app's name in the gateway's `[[office]]` list.
pub const NAME: &str = "Demo Office";

#[derive(Clone)]
pub struct DemoOffice {
    http: reqwest::Client,
}

/// Discovery XML naming the editor at `base` (`http://host:port`) for `.txt` files.
pub fn discovery(base: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<wopi-discovery>
  <net-zone name="external-http">
    <app name="text">
      <action default="true" ext="txt" name="edit" urlsrc="{base}/edit?"/>
      <action ext="txt" name="view" urlsrc="{base}/edit?"/>
    </app>
  </net-zone>
</wopi-discovery>
"#
    )
}

impl DemoOffice {
    pub fn new() -> Self {
        let http = wopigate::http_client::client(Duration::from_secs(2), Duration::from_secs(30))
            .expect("an HTTP client");
        Self { http }
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let router = Router::new()
            .route("/edit", get(edit).post(edit_posted))
            .route("/save", post(save))
            .with_state(self.clone());
        super::serve_http(router, addr).await
    }

    /// A WOPI call on `src` (the file's URL at the gateway) with `token`.
    fn call(
        &self,
        method: reqwest::Method,
        src: &str,
        contents: bool,
        token: &str,
    ) -> reqwest::RequestBuilder {
        let url = if contents {
            format!("{src}/contents")
        } else {
            src.to_owned()
        };
        self.http
            .request(method, url)
            .query(&[("access_token", token)])
    }

    async fn page(&self, src: &str, token: &str) -> Result<String, String> {
        let info: serde_json::Value = self
            .call(reqwest::Method::GET, src, false, token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("CheckFileInfo: {e}"))?
            .json()
            .await
            .map_err(|e| format!("CheckFileInfo: {e}"))?;
        let bytes = self
            .call(reqwest::Method::GET, src, true, token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GetFile: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("GetFile: {e}"))?;
        let name = info["BaseFileName"].as_str().unwrap_or("?");
        let writable = info["UserCanWrite"].as_bool().unwrap_or(false);
        Ok(format!(
            r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{name} - {NAME}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:48em}}textarea{{width:100%;height:12em}}
.meta{{color:#555}}</style></head>
<body>
<h1 id="name">{name}</h1>
<p class="meta">Size: <span id="size">{size}</span> bytes · served by REVA through wopigate over WOPI</p>
<form method="post" action="/save">
<input type="hidden" name="WOPISrc" value="{src}">
<input type="hidden" name="access_token" value="{token}">
<textarea id="text" name="text"{readonly}>{text}</textarea>
<p><button id="save" type="submit"{disabled}>Save</button></p>
</form>
</body></html>
"#,
            name = escape(name),
            size = info["Size"].as_u64().unwrap_or(bytes.len() as u64),
            src = escape(src),
            token = escape(token),
            text = escape(&String::from_utf8_lossy(&bytes)),
            readonly = if writable { "" } else { " readonly" },
            disabled = if writable { "" } else { " disabled" },
        ))
    }

    /// Lock, PutFile, Unlock: what an office app does to save.
    async fn store(&self, src: &str, token: &str, text: String) -> Result<(), String> {
        let lock = format!("demo-{}", uuid::Uuid::new_v4().simple());
        let steps: [(&str, bool, Option<String>); 3] = [
            ("LOCK", false, None),
            ("PUT", true, Some(text)),
            ("UNLOCK", false, None),
        ];
        for (op, contents, body) in steps {
            let mut req = self
                .call(reqwest::Method::POST, src, contents, token)
                .header("X-WOPI-Override", op)
                .header("X-WOPI-Lock", &lock);
            if let Some(body) = body {
                req = req.body(body);
            }
            let status = req.send().await.map_err(|e| format!("{op}: {e}"))?.status();
            if !status.is_success() {
                return Err(format!("{op} answered {status}"));
            }
        }
        Ok(())
    }
}

impl Default for DemoOffice {
    fn default() -> Self {
        Self::new()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn failed(why: String) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Html(format!(
            "<!doctype html><p id=\"error\">{}</p>",
            escape(&why)
        )),
    )
        .into_response()
}

fn launch_params(p: &HashMap<String, String>) -> Option<(&str, &str)> {
    Some((p.get("WOPISrc")?, p.get("access_token")?))
}

async fn show(office: &DemoOffice, p: &HashMap<String, String>) -> Response {
    let Some((src, token)) = launch_params(p) else {
        return (StatusCode::BAD_REQUEST, "WOPISrc and access_token needed").into_response();
    };
    match office.page(src, token).await {
        Ok(html) => Html(html).into_response(),
        Err(why) => failed(why),
    }
}

/// Opened as a link (everything in the query).
async fn edit(State(o): State<DemoOffice>, Query(p): Query<HashMap<String, String>>) -> Response {
    show(&o, &p).await
}

/// Opened as real hosts do: `WOPISrc` in the query, the token in a form post.
async fn edit_posted(
    State(o): State<DemoOffice>,
    Query(mut p): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    p.extend(form);
    show(&o, &p).await
}

async fn save(State(o): State<DemoOffice>, Form(mut p): Form<HashMap<String, String>>) -> Response {
    let text = p.remove("text").unwrap_or_default().replace("\r\n", "\n");
    let Some((src, token)) = launch_params(&p) else {
        return (StatusCode::BAD_REQUEST, "WOPISrc and access_token needed").into_response();
    };
    if let Err(why) = o.store(src, token, text).await {
        return failed(why);
    }
    // Show the saved version, read back through the gateway.
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("WOPISrc", src)
        .append_pair("access_token", token)
        .finish();
    Redirect::to(&format!("/edit?{q}")).into_response()
}

/// The sample text file the editor opens (in alice's home).
pub const SAMPLE_ID: &str = "file-welcome";
pub const SAMPLE_NAME: &str = "welcome.txt";
pub const SAMPLE_TEXT: &str = "Hello from wopigate.\nEdit this text and press Save.\n";

/// The demo office app and a stack that lists it first, with the sample file in the tree.
pub struct DemoStack {
    pub stack: super::stack::Stack,
    pub office: DemoOffice,
    pub office_server: Running,
}

impl DemoStack {
    pub async fn start(opts: super::stack::StackOptions) -> Self {
        let office = DemoOffice::new();
        let office_server = office
            .serve(super::localhost(0))
            .await
            .expect("demo office");
        // The stack's options hold discovery documents for its whole life.
        let xml: &'static str =
            Box::leak(discovery(&format!("http://{}", office_server.addr)).into_boxed_str());
        let mut offices = vec![(NAME, xml)];
        offices.extend(opts.offices.iter().copied());
        let stack =
            super::stack::Stack::start(super::stack::StackOptions { offices, ..opts }).await;
        stack.tree.add_file(
            super::stack::STORAGE,
            SAMPLE_ID,
            Some("home"),
            SAMPLE_NAME,
            super::tree::Content::Bytes(SAMPLE_TEXT.as_bytes().to_vec()),
        );
        Self {
            stack,
            office,
            office_server,
        }
    }

    /// Opens the sample file as alice through the gateway's `/app/open` and returns the link
    /// a person opens in a browser: the app URL with the access token added (a real host
    /// posts the token in a form instead).
    pub async fn open_link(&self) -> Result<String, String> {
        let http = wopigate::http_client::client(Duration::from_secs(2), Duration::from_secs(10))?;
        let id = wopigate::ids::encode_legacy(super::stack::STORAGE, SAMPLE_ID);
        let r = http
            .post(format!("{}/app/open", self.stack.gateway_url()))
            .bearer_auth(self.stack.idp.token("alice"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("file_id", &id)
                    .append_pair("app_name", NAME)
                    .finish(),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        let (Some(url), Some(token)) = (
            body["app_url"].as_str(),
            body["form_parameters"]["access_token"].as_str(),
        ) else {
            return Err(format!("open answered {status}: {body}"));
        };
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        Ok(format!("{url}&access_token={token}"))
    }

    /// The sample file's content in the fake storage.
    pub fn sample_text(&self) -> String {
        match self
            .stack
            .tree
            .get_by(super::stack::STORAGE, SAMPLE_ID)
            .map(|e| e.content)
        {
            Some(super::tree::Content::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        }
    }
}
