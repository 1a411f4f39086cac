//! Headers set towards the wopiserver: forwarding information is ours, never the client's
//! (security.md P8) — only a trusted load balancer's chain is passed on, appended to
//! ([`super::client`]) — and the request id travels as `X-Trace-Id`.

use pingora::http::RequestHeader;

/// Headers a client may not choose for the upstream.
const SPOOFABLE: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-trace-id",
];

pub struct Forwarding<'a> {
    /// Who the client is, and the forwarded chain to pass on ([`super::client`]).
    pub client: &'a super::client::Client,
    pub proto: &'static str,
    pub host: Option<&'a str>,
    pub request_id: &'a str,
    pub upstream_authority: &'a str,
}

pub fn apply(req: &mut RequestHeader, f: &Forwarding<'_>) -> pingora::Result<()> {
    // One look at the names the client sent; removing each spoofable name costs two map
    // lookups even when (as almost always) it is absent.
    if req.headers.keys().any(|k| SPOOFABLE.contains(&k.as_str())) {
        for name in SPOOFABLE {
            req.remove_header(name);
        }
    }
    if let Some(chain) = &f.client.forwarded_for {
        req.insert_header("X-Forwarded-For", chain.as_str())?;
    }
    if let Some(ip) = f.client.addr {
        req.insert_header("X-Real-IP", ip.to_string())?;
    }
    if let Some(forwarded) = &f.client.forwarded {
        req.insert_header("Forwarded", forwarded.as_str())?;
    }
    req.insert_header("X-Forwarded-Proto", http::HeaderValue::from_static(f.proto))?;
    if let Some(host) = f.host {
        req.insert_header("X-Forwarded-Host", host)?;
    }
    req.insert_header("X-Trace-Id", f.request_id)?;
    req.insert_header(http::header::HOST, f.upstream_authority)?;
    Ok(())
}

/// Sets the forwarding headers on a request to the wopiserver: the client's address and the
/// forwarded chain, the scheme it used, its `Host` when `pass_host` (the public listener), the
/// request id, and the wopiserver's own authority as `Host`.
pub fn forward(
    session: &pingora::proxy::Session,
    upstream_request: &mut RequestHeader,
    client: &super::client::Client,
    proto: &'static str,
    pass_host: bool,
    request_id: &str,
    upstream: Option<&super::Upstream>,
) -> pingora::Result<()> {
    let host = pass_host
        .then(|| session.req_header().headers.get(http::header::HOST))
        .flatten()
        .and_then(|v| v.to_str().ok());
    apply(
        upstream_request,
        &Forwarding {
            client,
            proto,
            host,
            request_id,
            upstream_authority: upstream.map_or("", |u| u.authority.as_str()),
        },
    )
}

/// The request's id: the caller's `X-Request-Id` when it is a sane one, else a fresh one.
pub fn request_id_of(req: &RequestHeader) -> String {
    req.headers
        .get("x-request-id")
        .and_then(|v| valid_request_id(v.as_bytes()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// The client of a request, given the trusted proxies ([`super::client`]).
pub fn client_of(
    session: &pingora::proxy::Session,
    proxies: &[ipnet::IpNet],
) -> super::client::Client {
    let peer = client_ip(session);
    // Most deployments trust no proxy: the forwarded headers are then not even read.
    if !peer.is_some_and(|p| super::client::trusted(p, proxies)) {
        return super::client::client_of(peer, proxies, &[], &[]);
    }
    let headers = &session.req_header().headers;
    let values = |name| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    super::client::client_of(
        peer,
        proxies,
        &values(http::header::FORWARDED),
        &values(http::header::HeaderName::from_static("x-forwarded-for")),
    )
}

/// The peer's IP address, when the connection is over IP.
pub fn client_ip(session: &pingora::proxy::Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// A fresh request id: 32 hex digits, a random per-process half and a counter. Unique without
/// asking the kernel for randomness on every request (a `getrandom` call each).
pub fn new_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    format!(
        "{process:016x}{:016x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A usable inbound `X-Request-Id`: short and plain, so it is safe in logs and headers.
pub fn valid_request_id(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_forwarding_headers_are_replaced() {
        let mut req = RequestHeader::build("GET", b"/wopi/files/x", None).unwrap();
        req.insert_header("X-Forwarded-For", "6.6.6.6").unwrap();
        req.insert_header("X-Real-IP", "6.6.6.6").unwrap();
        req.insert_header("Forwarded", "for=6.6.6.6").unwrap();
        req.insert_header("X-Trace-Id", "evil").unwrap();
        let client = super::super::client::client_of(
            Some("127.0.0.1".parse().unwrap()),
            &[],
            &["for=6.6.6.6"],
            &["6.6.6.6"],
        );
        apply(
            &mut req,
            &Forwarding {
                client: &client,
                proto: "http",
                host: Some("gw.example"),
                request_id: "rid-1",
                upstream_authority: "127.0.0.1:8880",
            },
        )
        .unwrap();
        let get = |n: &str| {
            req.headers
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(get("x-real-ip"), ["127.0.0.1"]);
        assert!(get("forwarded").is_empty());
        assert_eq!(get("x-trace-id"), ["rid-1"]);
        assert_eq!(get("x-forwarded-host"), ["gw.example"]);
        assert_eq!(get("host"), ["127.0.0.1:8880"]);
    }

    #[test]
    fn generated_request_ids_are_distinct_and_valid() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(a[..16], b[..16], "one process half");
        assert_eq!(valid_request_id(a.as_bytes()), Some(a.as_str()));
    }

    #[test]
    fn request_ids() {
        assert_eq!(valid_request_id(b"abc-123"), Some("abc-123"));
        assert_eq!(valid_request_id(b"a b"), None);
        assert_eq!(valid_request_id(b""), None);
        assert_eq!(valid_request_id(&[b'a'; 200]), None);
    }
}
