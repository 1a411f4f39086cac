//! Client of the wopiserver's `GET /wopi/iop/openinapp` (cs3-wopiserver.md §5). Sends the IOP
//! secret and the REVA token, nothing else from the inbound request; calls the instance that
//! will serve the file's WOPI traffic ([`instances`]), the next one when it refuses. The calls
//! the gateway makes on a file itself (locks, CheckFileInfo, PutFile) are in [`files`].

mod files;

pub use files::LockCall;
pub mod health;
pub mod instances;

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use url::Url;

use crate::http_client::{self, FetchError};
use crate::secret::Secret;
use crate::wopi::ViewMode;

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Parameters of one `openinapp` call.
#[derive(Debug, Clone)]
pub struct OpenInApp<'a> {
    pub fileid: &'a str,
    /// The file's storage id: with `fileid`, which instance serves it (not sent).
    pub storage_id: &'a str,
    pub endpoint: &'a str,
    pub viewmode: ViewMode,
    pub appname: &'a str,
    pub appurl: &'a str,
    pub appviewurl: &'a str,
    pub username: &'a str,
    pub userid: &'a str,
    pub folderurl: Option<&'a str>,
    pub usertype: &'a str,
}

/// What the wopiserver answered.
#[derive(Debug, Clone)]
pub struct Opened {
    pub app_url: String,
    pub access_token: Secret,
    pub forced_viewmode_reason: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(rename = "app-url")]
    app_url: String,
    #[serde(rename = "form-parameters")]
    form_parameters: FormParameters,
    #[serde(rename = "forced-viewmode-reason")]
    forced_viewmode_reason: Option<String>,
}

#[derive(Deserialize)]
struct FormParameters {
    access_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WopiserverError {
    #[error("wopiserver unavailable")]
    Unavailable,
    #[error("every wopiserver instance that could serve the file is busy")]
    Busy,
    #[error("wopiserver did not answer in time")]
    Timeout,
    #[error("wopiserver: file not found")]
    NotFound,
    #[error("wopiserver refused the open request (HTTP {0})")]
    Rejected(u16),
    #[error("wopiserver sent an invalid answer: {0}")]
    Invalid(String),
    /// The connection broke off mid-request (the instance died): a call without effects may
    /// go to the file's next instance.
    #[error("the wopiserver connection broke off")]
    BrokenOff,
}

impl From<FetchError> for WopiserverError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Timeout => Self::Timeout,
            FetchError::Connect => Self::Unavailable,
            FetchError::Status(404) => Self::NotFound,
            FetchError::Status(s) => Self::Rejected(s),
            FetchError::Transport => Self::BrokenOff,
            other => Self::Invalid(other.to_string()),
        }
    }
}

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes one query value. The wopiserver applies `unquote_plus` a second time to `username`,
/// `folderurl`, `appname`, `appurl`, `appviewurl` and `appinturl` after Flask's own decoding
/// (cs3-wopiserver.md §5.1, observed in code), so those are encoded twice: the exact inverse.
fn encode(value: &str, twice: bool) -> String {
    let once = utf8_percent_encode(value, QUERY_VALUE).to_string();
    if twice {
        utf8_percent_encode(&once, QUERY_VALUE).to_string()
    } else {
        once
    }
}

pub struct WopiserverClient {
    instances: Arc<instances::Instances>,
    iop_secret: Secret,
    http: reqwest::Client,
    /// For streamed uploads (PutRelativeFile's body): the client's body pace bounds them, so
    /// only a generous total deadline here.
    uploads: reqwest::Client,
}

/// Longest a streamed upload to the wopiserver may take in all.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

impl WopiserverClient {
    pub fn new(
        instances: Arc<instances::Instances>,
        iop_secret: Secret,
        connect_timeout: Duration,
        timeout: Duration,
        tls: &crate::tls::ClientTls,
    ) -> Result<Self, String> {
        Ok(Self {
            instances,
            iop_secret,
            http: http_client::client_tls(connect_timeout, timeout, tls)?,
            uploads: http_client::client_tls(connect_timeout, UPLOAD_TIMEOUT, tls)?,
        })
    }

    pub fn instances(&self) -> &Arc<instances::Instances> {
        &self.instances
    }

    fn openinapp_url(base: &Url, p: &OpenInApp<'_>) -> Result<Url, WopiserverError> {
        let mut q = String::with_capacity(512);
        let mut push = |k: &str, v: &str, twice: bool| {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(k);
            q.push('=');
            q.push_str(&encode(v, twice));
        };
        push("fileid", p.fileid, false);
        push("endpoint", p.endpoint, false);
        push("viewmode", p.viewmode.as_str(), false);
        push("appname", p.appname, true);
        push("appurl", p.appurl, true);
        push("appviewurl", p.appviewurl, true);
        push("username", p.username, true);
        if !p.userid.is_empty() {
            push("userid", p.userid, false);
        }
        if let Some(f) = p.folderurl {
            push("folderurl", f, true);
        }
        push("usertype", p.usertype, false);
        let mut url = base
            .join("wopi/iop/openinapp")
            .map_err(|e| WopiserverError::Invalid(e.to_string()))?;
        url.set_query(Some(&q));
        Ok(url)
    }

    /// Calls `openinapp` with `Authorization: Bearer <iopsecret>`, `TokenHeader: <REVA token>` and
    /// `X-Trace-Id` on the instance that serves `p`'s file. An instance that refuses the
    /// connection has seen nothing, and one that died mid-call changed nothing (`openinapp` only
    /// issues a token), so the next one in the file's order is asked; any other failure is the
    /// answer, and so is the last one when no instance is left.
    pub async fn open_in_app(
        &self,
        p: &OpenInApp<'_>,
        reva_token: &Secret,
        trace_id: &str,
    ) -> Result<Opened, WopiserverError> {
        let started = std::time::Instant::now();
        let key = instances::affinity_key(p.storage_id, p.fileid);
        let mut tried = instances::Tried::default();
        let mut last = WopiserverError::Unavailable;
        let result = loop {
            let Some(i) = self.instances.choose(key.as_bytes(), tried) else {
                break Err(last);
            };
            tried.add(i);
            let Some(instance) = self.instances.get(i) else {
                break Err(WopiserverError::Unavailable);
            };
            let Ok(_slot) = instance.acquire(&self.instances.capacity).await else {
                break Err(WopiserverError::Busy);
            };
            match self
                .open_in_app_once(&instance.base, p, reva_token, trace_id)
                .await
            {
                Err(e @ (WopiserverError::Unavailable | WopiserverError::BrokenOff)) => {
                    // Refusing connections: out for a while; broken off: the health checks
                    // decide (one cut call is no verdict).
                    if matches!(e, WopiserverError::Unavailable) {
                        self.instances.eject(i);
                    }
                    crate::metrics::metrics()
                        .instance_failovers
                        .with_label_values(&[&instance.name])
                        .inc();
                    last = e;
                }
                other => break other,
            }
        };
        let m = crate::metrics::metrics();
        m.observe_upstream("wopiserver", "openinapp", started.elapsed());
        match &result {
            Err(WopiserverError::Unavailable) => m.upstream_error("wopiserver", "unavailable"),
            Err(WopiserverError::Timeout) => m.upstream_error("wopiserver", "timeout"),
            Err(WopiserverError::Invalid(_)) => m.upstream_error("wopiserver", "invalid"),
            Err(WopiserverError::BrokenOff) => m.upstream_error("wopiserver", "transport"),
            _ => {}
        }
        result
    }

    /// The file's next instance not in `tried`, a concurrency slot on it, and `path_query`
    /// there.
    async fn reach(
        &self,
        key: &str,
        tried: instances::Tried,
        path_query: &str,
    ) -> Result<(usize, Url, instances::Slot), WopiserverError> {
        let i = self
            .instances
            .choose(key.as_bytes(), tried)
            .ok_or(WopiserverError::Unavailable)?;
        let instance = self.instances.get(i).ok_or(WopiserverError::Unavailable)?;
        let slot = instance
            .acquire(&self.instances.capacity)
            .await
            .map_err(|_| WopiserverError::Busy)?;
        let url = instance
            .base
            .join(path_query.trim_start_matches('/'))
            .map_err(|e| WopiserverError::Invalid(e.to_string()))?;
        Ok((i, url, slot))
    }

    async fn open_in_app_once(
        &self,
        base: &Url,
        p: &OpenInApp<'_>,
        reva_token: &Secret,
        trace_id: &str,
    ) -> Result<Opened, WopiserverError> {
        let url = Self::openinapp_url(base, p)?;
        let mut resp = self
            .http
            .get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.iop_secret.expose()),
            )
            .header("TokenHeader", reva_token.expose())
            .header("X-Trace-Id", trace_id)
            .send()
            .await
            .map_err(|e| WopiserverError::from(FetchError::from_reqwest(&e)))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status(status).into());
        }
        let body = http_client::read_bounded(&mut resp, MAX_RESPONSE_BYTES).await?;
        let r: Response = serde_json::from_slice(&body)
            .map_err(|_| WopiserverError::Invalid("not the openinapp JSON shape".into()))?;
        if r.form_parameters.access_token.is_empty() || r.app_url.is_empty() {
            return Err(WopiserverError::Invalid(
                "empty app URL or access token".into(),
            ));
        }
        Ok(Opened {
            app_url: r.app_url,
            access_token: Secret::new(r.form_parameters.access_token),
            forced_viewmode_reason: r.forced_viewmode_reason.filter(|s| !s.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_modes_round_trip() {
        for m in [
            ViewMode::ViewOnly,
            ViewMode::ReadOnly,
            ViewMode::ReadWrite,
            ViewMode::Preview,
            ViewMode::Embedded,
        ] {
            assert_eq!(ViewMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(ViewMode::parse("write"), Some(ViewMode::ReadWrite));
        assert_eq!(ViewMode::parse("VIEW_MODE_BOGUS"), None);
    }

    #[test]
    fn double_decoded_parameters_are_encoded_twice() {
        let url = WopiserverClient::openinapp_url(
            &Url::parse("http://w.example:8880/").unwrap(),
            &OpenInApp {
                fileid: "a+b",
                storage_id: "st",
                endpoint: "st$sp",
                viewmode: ViewMode::ReadWrite,
                appname: "Microsoft Office Online",
                appurl: "https://x/we.aspx?a=1&",
                appviewurl: "https://x/wv.aspx?",
                username: "Alice+Bob",
                userid: "u@idp",
                folderurl: None,
                usertype: "regular",
            },
        )
        .unwrap();
        let q = url.query().unwrap();
        assert!(q.starts_with("fileid=a%2Bb&endpoint=st%24sp&viewmode=VIEW_MODE_READ_WRITE"));
        assert!(q.contains("username=Alice%252BBob"), "{q}");
        assert!(
            q.contains("appurl=https%253A%252F%252Fx%252Fwe.aspx%253Fa%253D1%2526"),
            "{q}"
        );
        assert!(!q.contains("folderurl"));
        assert_eq!(url.path(), "/wopi/iop/openinapp");
    }
}
