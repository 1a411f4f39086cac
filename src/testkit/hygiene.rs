//! Secret hygiene across the whole test suite: every secret and token a double creates or sees
//! is registered here, and every gateway log is scanned for all of them when its process ends
//! ([`crate::testkit::gateway::GatewayProcess`]'s drop). One leak fails the test that caused it.

use std::sync::Mutex;

static REGISTERED: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// Remembers `value` (a secret or token) under a description.
pub fn register(what: &'static str, value: &str) {
    if value.len() < 12 {
        return; // too short to scan for without false hits
    }
    if let Ok(mut g) = REGISTERED.lock()
        && !g.iter().any(|(_, v)| v == value)
    {
        g.push((what, value.to_owned()));
    }
}

/// What of the registered values `text` contains: descriptions only, never the values. A JWT's
/// signature alone counts as a leak too.
pub fn leaks_in(text: &str) -> Vec<&'static str> {
    let Ok(g) = REGISTERED.lock() else {
        return Vec::new();
    };
    g.iter()
        .filter(|(_, v)| {
            let tail = v.rsplit('.').next().unwrap_or(v);
            text.contains(v.as_str()) || (tail.len() >= 16 && text.contains(tail))
        })
        .map(|(what, _)| *what)
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
