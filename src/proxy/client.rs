//! Who the client is when the gateway sits behind a load balancer. From a peer in
//! `server.trusted_proxies` the forwarded chain (RFC 7239 `Forwarded` `for=`, else
//! `X-Forwarded-For`) is read from the right, and the client is the rightmost hop that is not a
//! trusted proxy: a client can prepend whatever it likes, never choose what is taken for its
//! address. From any other peer the forwarded headers are ignored (and dropped on the way up)
//! and the peer is the client.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client of one request and the forwarding headers the wopiserver gets for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The client's address; `None` when the connection is not over IP.
    pub addr: Option<IpAddr>,
    /// `X-Forwarded-For` towards the wopiserver: the chain received from a trusted proxy with
    /// that proxy appended, else the peer alone.
    pub forwarded_for: Option<String>,
    /// `Forwarded` towards the wopiserver: the received one with `for=<proxy>` appended, only
    /// from a trusted proxy that sent one.
    pub forwarded: Option<String>,
}

/// Whether `addr` is one of the trusted proxies.
pub fn trusted(addr: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&addr))
}

/// One hop as written in `X-Forwarded-For` or a `for=` parameter: an address, maybe with a
/// port, IPv6 maybe in brackets; `None` for `unknown`, obfuscated (`_x`) or garbage hops.
fn hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The `for=` hops of `Forwarded` header values, in order.
fn forwarded_hops<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            })
        })
        .collect()
}

/// The client of a request from `peer` carrying these `Forwarded` and `X-Forwarded-For`
/// values.
pub fn client_of(
    peer: Option<IpAddr>,
    proxies: &[IpNet],
    forwarded: &[&str],
    forwarded_for: &[&str],
) -> Client {
    let Some(peer) = peer else {
        return Client::default();
    };
    if !trusted(peer, proxies) || (forwarded.is_empty() && forwarded_for.is_empty()) {
        return Client {
            addr: Some(peer),
            forwarded_for: Some(peer.to_string()),
            forwarded: None,
        };
    }
    let hops: Vec<&str> = if forwarded.is_empty() {
        forwarded_for.iter().flat_map(|v| v.split(',')).collect()
    } else {
        forwarded_hops(forwarded)
    };
    // From the right: past trusted proxies, stopping at the first hop that is not one (or that
    // cannot be read: nothing left of it is believed).
    let mut client = peer;
    for h in hops.iter().rev() {
        match hop(h) {
            Some(addr) => {
                client = addr;
                if !trusted(addr, proxies) {
                    break;
                }
            }
            None => break,
        }
    }
    let chain = |values: &[&str]| {
        let joined = values.join(", ");
        (!joined.trim().is_empty()).then_some(joined)
    };
    let forwarded_for = match chain(forwarded_for) {
        Some(c) => format!("{c}, {peer}"),
        None => peer.to_string(),
    };
    let forwarded = chain(forwarded).map(|c| match peer {
        IpAddr::V4(_) => format!("{c}, for={peer}"),
        IpAddr::V6(_) => format!("{c}, for=\"[{peer}]\""),
    });
    Client {
        addr: Some(client),
        forwarded_for: Some(forwarded_for),
        forwarded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let c = client_of(
            Some(ip("198.51.100.7")),
            &nets(&["10.0.0.0/8"]),
            &["for=192.0.2.1"],
            &["192.0.2.1"],
        );
        assert_eq!(c.addr, Some(ip("198.51.100.7")));
        assert_eq!(c.forwarded_for.as_deref(), Some("198.51.100.7"));
        assert_eq!(c.forwarded, None, "dropped");
        let nobody_trusted = client_of(Some(ip("10.0.0.1")), &[], &[], &["192.0.2.1"]);
        assert_eq!(nobody_trusted.addr, Some(ip("10.0.0.1")));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let lb = nets(&["10.0.0.0/8"]);
        let c = client_of(Some(ip("10.0.0.5")), &lb, &[], &["203.0.113.9"]);
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        assert_eq!(c.forwarded_for.as_deref(), Some("203.0.113.9, 10.0.0.5"));
        // A client prepending hops chooses nothing: the hop its proxy added counts.
        let c = client_of(
            Some(ip("10.0.0.5")),
            &lb,
            &[],
            &["6.6.6.6, 203.0.113.9", "10.1.1.1"],
        );
        assert_eq!(c.addr, Some(ip("203.0.113.9")));
        assert_eq!(
            c.forwarded_for.as_deref(),
            Some("6.6.6.6, 203.0.113.9, 10.1.1.1, 10.0.0.5"),
            "appended to, not replaced"
        );
        // All hops trusted: the leftmost is the client.
        let c = client_of(Some(ip("10.0.0.5")), &lb, &[], &["10.2.2.2"]);
        assert_eq!(c.addr, Some(ip("10.2.2.2")));
        // An unreadable hop: nothing left of it is believed.
        let c = client_of(Some(ip("10.0.0.5")), &lb, &[], &["203.0.113.9, garbage"]);
        assert_eq!(c.addr, Some(ip("10.0.0.5")));
    }

    #[test]
    fn rfc_7239_forwarded_wins_over_x_forwarded_for() {
        let lb = nets(&["10.0.0.0/8", "fd00::/8"]);
        let c = client_of(
            Some(ip("fd00::5")),
            &lb,
            &["for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.9"],
            &["192.0.2.99"],
        );
        assert_eq!(c.addr, Some(ip("2001:db8:cafe::17")));
        assert_eq!(
            c.forwarded.as_deref(),
            Some("for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.9, for=\"[fd00::5]\"")
        );
        let c = client_of(Some(ip("10.0.0.5")), &lb, &["for=unknown"], &[]);
        assert_eq!(
            c.addr,
            Some(ip("10.0.0.5")),
            "an obfuscated hop is not believed"
        );
        let c = client_of(Some(ip("10.0.0.5")), &lb, &["for=192.0.2.60:8080"], &[]);
        assert_eq!(c.addr, Some(ip("192.0.2.60")));
    }
}
