//! The file-operation half of the wopiserver client: the WOPI calls the gateway makes itself
//! (lock calls and CheckFileInfo for Save As, the streamed PutFile of its body) on the instance
//! serving the file. The open-in-app half is in [`super`].

use url::Url;

use super::{MAX_RESPONSE_BYTES, WopiserverClient, WopiserverError, instances};
use crate::http_client::{self, FetchError};

/// The lock calls the gateway makes (wopi.md §4): each names the lock id it needs, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockCall<'a> {
    GetLock,
    Lock(&'a str),
    Unlock(&'a str),
}

impl<'a> LockCall<'a> {
    /// `X-WOPI-Override` and `X-WOPI-Lock` on the wire.
    fn wire(self) -> (&'static str, Option<&'a str>) {
        match self {
            Self::GetLock => ("GET_LOCK", None),
            Self::Lock(id) => ("LOCK", Some(id)),
            Self::Unlock(id) => ("UNLOCK", Some(id)),
        }
    }
}

impl WopiserverClient {
    /// Sends the request `build` makes for `path_query` to the instance serving the file
    /// (`key` = storage and opaque id), with a concurrency slot held until the answer is read.
    /// An instance refusing the connection is ejected and the next one asked; so is, when
    /// `replayable` (a read), one whose connection broke off mid-call. Any other failure is the
    /// answer, and so is the last one when no instance is left.
    async fn send_to_file(
        &self,
        key: (&str, &str),
        path_query: &str,
        replayable: bool,
        build: impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, instances::Slot), WopiserverError> {
        let key = instances::affinity_key(key.0, key.1);
        let mut tried = instances::Tried::default();
        let mut last = WopiserverError::Unavailable;
        loop {
            let (i, url, slot) = match self.reach(&key, tried, path_query).await {
                Err(WopiserverError::Unavailable) => return Err(last),
                other => other?,
            };
            tried.add(i);
            match build(&self.http, url).send().await {
                Ok(resp) => return Ok((resp, slot)),
                Err(e) => match FetchError::from_reqwest(&e) {
                    FetchError::Connect => self.instances.eject(i),
                    FetchError::Transport if replayable => last = WopiserverError::BrokenOff,
                    other => return Err(other.into()),
                },
            }
        }
    }

    /// A WOPI lock call the gateway makes itself, on the instance serving the file (`key` =
    /// storage and opaque id); `path_query` carries the wopiserver token. The answer's status
    /// and `X-WOPI-Lock`.
    pub async fn lock_call(
        &self,
        key: (&str, &str),
        path_query: &str,
        call: LockCall<'_>,
    ) -> Result<(u16, Option<String>), WopiserverError> {
        let (operation, lock) = call.wire();
        let (resp, _slot) = self
            .send_to_file(key, path_query, false, |http, url| {
                let req = http
                    .post(url)
                    .header("X-WOPI-Override", operation)
                    .header(http::header::CONTENT_LENGTH, "0");
                match lock {
                    Some(lock) => req.header("X-WOPI-Lock", lock),
                    None => req,
                }
            })
            .await?;
        let current = resp
            .headers()
            .get("x-wopi-lock")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((resp.status().as_u16(), current))
    }

    /// The wopiserver's CheckFileInfo for the token in `path_query`, on the instance serving the
    /// file: its status and, on 200, its JSON. The wopiserver verifies the token's signature,
    /// which the gateway cannot: a 200 proves the token, and the answer says what it grants.
    pub async fn check_file_info(
        &self,
        key: (&str, &str),
        path_query: &str,
    ) -> Result<(u16, Option<serde_json::Value>), WopiserverError> {
        let (mut resp, _slot) = self
            .send_to_file(key, path_query, true, |http, url| http.get(url))
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Ok((status, None));
        }
        let body = http_client::read_bounded(&mut resp, MAX_RESPONSE_BYTES).await?;
        let info = serde_json::from_slice(&body)
            .map_err(|_| WopiserverError::Invalid("CheckFileInfo is not JSON".into()))?;
        Ok((status, Some(info)))
    }

    /// The wopiserver's PutFile with a streamed body, on the instance serving the file. Not
    /// sent elsewhere when that instance refuses: the body is already on its way (503).
    pub async fn put_file(
        &self,
        key: (&str, &str),
        path_query: &str,
        lock: Option<&str>,
        length: Option<u64>,
        body: reqwest::Body,
    ) -> Result<(u16, Option<String>), WopiserverError> {
        let key = instances::affinity_key(key.0, key.1);
        let (i, url, _slot) = self
            .reach(&key, instances::Tried::default(), path_query)
            .await?;
        let mut req = self
            .uploads
            .post(url)
            .header("X-WOPI-Override", "PUT")
            .body(body);
        if let Some(lock) = lock {
            req = req.header("X-WOPI-Lock", lock);
        }
        if let Some(n) = length {
            req = req.header(http::header::CONTENT_LENGTH, n);
        }
        let started = std::time::Instant::now();
        let sent = req.send().await;
        crate::metrics::metrics().observe_upstream("wopiserver", "PutFile", started.elapsed());
        match sent {
            Ok(resp) => Ok((
                resp.status().as_u16(),
                resp.headers()
                    .get("x-wopi-lock")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            )),
            Err(e) => {
                let e = FetchError::from_reqwest(&e);
                if matches!(e, FetchError::Connect) {
                    self.instances.eject(i);
                }
                Err(e.into())
            }
        }
    }
}
