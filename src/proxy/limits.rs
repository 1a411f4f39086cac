//! Request limits checked per request (security.md P5): the size of the head, and the minimum
//! rate of a request body. Connection-level limits (slow heads, idle keep-alive) live in
//! [`super::conn`].

use std::time::Duration;

use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};

/// The head-size limits (security.md P5): 414 for a long target, 431 for a large head.
pub fn within_limits(req: &pingora::http::RequestHeader, limits: &Limits) -> Result<(), ApiError> {
    if req.raw_path().len() > limits.max_uri_bytes {
        return Err(ApiError::new(
            ErrorCode::UriTooLong,
            "request target too long",
        ));
    }
    let head_bytes = req.method.as_str().len()
        + req.raw_path().len()
        + 12
        + req
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_bytes > limits.max_header_bytes || req.headers.len() > limits.max_header_count {
        return Err(ApiError::new(
            ErrorCode::HeadersTooLarge,
            "request headers too large",
        ));
    }
    Ok(())
}

/// Bodies get `min_body_rate_after` to get going; after that they must average `min_body_rate`.
pub fn too_slow(bytes: u64, elapsed: Duration, limits: &Limits) -> bool {
    limits.min_body_rate > 0
        && elapsed > limits.min_body_rate_after
        && (bytes as f64) < limits.min_body_rate as f64 * elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 200,
            max_header_count: 3,
            max_uri_bytes: 40,
            min_body_rate: 1000,
            min_body_rate_after: Duration::from_secs(5),
        }
    }

    fn head(path: &str, headers: &[(&str, &str)]) -> pingora::http::RequestHeader {
        let mut h = pingora::http::RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (n, v) in headers {
            h.append_header(n.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn long_targets_and_large_heads_get_their_own_codes() {
        let l = limits();
        assert!(within_limits(&head("/wopi/files/x", &[("a", "b")]), &l).is_ok());
        let long = format!("/{}", "x".repeat(40));
        assert_eq!(
            within_limits(&head(&long, &[]), &l).unwrap_err().code,
            ErrorCode::UriTooLong
        );
        let big = "v".repeat(200);
        assert_eq!(
            within_limits(&head("/", &[("a", &big)]), &l)
                .unwrap_err()
                .code,
            ErrorCode::HeadersTooLarge
        );
        let many = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        assert_eq!(
            within_limits(&head("/", &many), &l).unwrap_err().code,
            ErrorCode::HeadersTooLarge
        );
    }

    #[test]
    fn a_body_is_too_slow_only_after_its_grace_period() {
        let l = limits();
        let s = Duration::from_secs;
        assert!(!too_slow(0, s(5), &l), "within the grace period");
        assert!(too_slow(5_000, s(6), &l), "below 1000 B/s after it");
        assert!(!too_slow(6_000, s(6), &l), "at the floor");
        let off = Limits {
            min_body_rate: 0,
            ..l
        };
        assert!(!too_slow(0, s(600), &off), "no floor configured");
    }
}
