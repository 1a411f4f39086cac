//! Secret hygiene across the whole test suite: every secret and token a double creates or sees
//! is registered here. Every gateway log is scanned for all of them when its process ends
//! ([`crate::gateway::GatewayProcess`]'s drop), and every response the gateway sends a
//! test (headers and bodies, through [`crate::tap::ResponseTap`]) for all of them but
//! the WOPI tokens the gateway is meant to hand out. One leak fails the test that caused it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// (description, value, may the gateway hand it to a client?)
static REGISTERED: Mutex<Vec<(&'static str, String, bool)>> = Mutex::new(Vec::new());
static VERSION: AtomicUsize = AtomicUsize::new(0);

/// Remembers `value` (a secret or token) under a description: it may appear in no gateway log
/// and no gateway response.
pub fn register(what: &'static str, value: &str) {
    add(what, value, false);
}

/// Remembers a token the gateway hands to its client (a WOPI access token from an open): it
/// may appear in responses, never in logs.
pub fn register_handed_out(what: &'static str, value: &str) {
    add(what, value, true);
}

fn add(what: &'static str, value: &str, handed_out: bool) {
    // Too short, or too uniform (a forged token of dots, say), to scan for without false hits.
    let distinct = value
        .bytes()
        .collect::<std::collections::HashSet<u8>>()
        .len();
    if value.len() < 12 || distinct < 8 {
        return;
    }
    if let Ok(mut g) = REGISTERED.lock()
        && !g.iter().any(|(_, v, _)| v == value)
    {
        g.push((what, value.to_owned(), handed_out));
        VERSION.fetch_add(1, Ordering::Release);
    }
}

/// Changes whenever something is registered (scanners rebuild their patterns then).
pub fn version() -> usize {
    VERSION.load(Ordering::Acquire)
}

/// What no response may contain, as (description, pattern): each value, and a JWT's signature
/// on its own.
pub fn never_sent() -> Vec<(&'static str, String)> {
    let Ok(g) = REGISTERED.lock() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (what, v, handed_out) in g.iter() {
        if *handed_out {
            continue;
        }
        out.push((*what, v.clone()));
        let tail = v.rsplit('.').next().unwrap_or(v);
        if tail.len() >= 16 && tail != v {
            out.push((*what, tail.to_owned()));
        }
    }
    out
}

/// What of the registered values `text` contains: descriptions only, never the values. A JWT's
/// signature alone counts as a leak too.
pub fn leaks_in(text: &str) -> Vec<&'static str> {
    let Ok(g) = REGISTERED.lock() else {
        return Vec::new();
    };
    g.iter()
        .filter(|(_, v, _)| {
            let tail = v.rsplit('.').next().unwrap_or(v);
            text.contains(v.as_str()) || (tail.len() >= 16 && text.contains(tail))
        })
        .map(|(what, _, _)| *what)
        .collect()
}

/// How many values are registered (so a test can show the scan had something to look for).
pub fn registered() -> usize {
    REGISTERED.lock().map_or(0, |g| g.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_value_or_its_signature_is_found_and_described() {
        register(
            "test token",
            "eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg",
        );
        assert!(registered() >= 1);
        assert_eq!(
            leaks_in("line eyJhbGciOi.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"),
            ["test token"]
        );
        assert_eq!(
            leaks_in("sig c2lnbmF0dXJlLW9mLXRoZS10b2tlbg only"),
            ["test token"]
        );
        assert!(leaks_in("access_token=[redacted]").is_empty());
    }
}
