//! Outbound HTTP (IdP, office discovery, wopiserver): one reqwest client per upstream with
//! rustls (ring provider), bounded bodies and explicit deadlines.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Url;

use crate::tls::ClientTls;

/// Why an outbound fetch failed, in terms the error mapping can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("cannot connect")]
    Connect,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid response: {0}")]
    Invalid(String),
    #[error("transport error")]
    Transport,
}

impl FetchError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "unavailable",
            Self::Status(_) => "status",
            Self::TooLarge(_) => "too_large",
            Self::Invalid(_) => "invalid",
            Self::Transport => "transport",
        }
    }

    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else if let Some(s) = e.status() {
            Self::Status(s.as_u16())
        } else {
            Self::Transport
        }
    }
}

pub use crate::tls::install_crypto_provider;

/// A client with connect and overall deadlines; redirects are not followed (a redirect from an
/// IdP or office server is a misconfiguration, and following it could leak to another host).
pub fn client(connect_timeout: Duration, timeout: Duration) -> Result<reqwest::Client, String> {
    client_pinned(connect_timeout, timeout, None)
}

/// Like [`client`], but when `ca_pem` is given only those CAs are trusted (pinning).
pub fn client_pinned(
    connect_timeout: Duration,
    timeout: Duration,
    ca_pem: Option<&[u8]>,
) -> Result<reqwest::Client, String> {
    client_tls(
        connect_timeout,
        timeout,
        &ClientTls {
            ca_pem: ca_pem.map(<[u8]>::to_vec),
            identity_pem: None,
        },
    )
}

/// Like [`client`], with an upstream's TLS settings: pinned CAs and a client certificate.
/// Settings reqwest cannot use are an error, never dropped for the defaults.
pub fn client_tls(
    connect_timeout: Duration,
    timeout: Duration,
    tls: &ClientTls,
) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("wopigate/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = tls.ca_pem.as_deref() {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("unusable CA bundle: {e}"))?;
        b = b.tls_certs_only(certs);
    }
    if let Some((cert, key)) = &tls.identity_pem {
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("unusable client certificate or key: {e}"))?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| format!("cannot build an HTTP client with these TLS settings: {e}"))
}

/// GET `url` and read at most `limit` bytes of a 200 answer.
pub async fn get_bounded(
    client: &reqwest::Client,
    url: &Url,
    limit: usize,
) -> Result<Bytes, FetchError> {
    let mut resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FetchError::from_reqwest(&e))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Err(FetchError::TooLarge(limit));
    }
    read_bounded(&mut resp, limit).await
}

/// Reads a response body up to `limit` bytes.
pub async fn read_bounded(resp: &mut reqwest::Response, limit: usize) -> Result<Bytes, FetchError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::from_reqwest(&e))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_reqwest_cannot_use_are_errors() {
        let s = Duration::from_secs(1);
        assert!(client(s, s).is_ok());
        // Used to fall back to a default client (platform roots, no deadlines, redirects).
        let bad = ClientTls {
            ca_pem: Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            identity_pem: None,
        };
        assert!(client_tls(s, s, &bad).is_err());
        let bad_identity = ClientTls {
            ca_pem: None,
            identity_pem: Some((b"no cert".to_vec(), b"no key".to_vec())),
        };
        assert!(client_tls(s, s, &bad_identity).is_err());
    }
}
