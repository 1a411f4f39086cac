//! Rate limits per user and per client address (`[rate_limits]`): fixed windows counted by
//! pingora-limits' `Rate` estimator (a count-min sketch: constant memory whatever the number of
//! keys, never undercounting). pingora-limits is a standalone crate without pingora's runtime,
//! so the flows that know the user (open, bootstrapper) use it as well as the edge.

use std::hash::Hash;
use std::time::{Duration, Instant};

use pingora_limits::rate::Rate;

/// Which request kind a limit applies to; also the `scope` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `GET /api/v0/wopi/open`, `POST /app/open`.
    Open,
    /// `/wopibootstrapper` (Office for iOS/Android sign-in and token refresh).
    Bootstrap,
    /// `/wopi/files/*` from office apps.
    Wopi,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Bootstrap => "bootstrap",
            Self::Wopi => "wopi",
        }
    }
}

/// One limit: at most `limit` requests per key in each window.
pub struct RateLimit {
    limit: u32,
    window: Duration,
    counts: Rate,
    /// When the estimator's first window began (its windows are aligned to its creation).
    start: Instant,
}

impl RateLimit {
    /// `None` for a limit of 0 (off).
    pub fn new(limit: u32, window: Duration) -> Option<Self> {
        (limit > 0 && !window.is_zero()).then(|| Self {
            limit,
            window,
            counts: Rate::new(window),
            start: Instant::now(),
        })
    }

    /// Counts one request for `key`; over the limit, the seconds until the window ends.
    pub fn admit<K: Hash>(&self, key: &K) -> Result<(), u64> {
        let seen = self.counts.observe(key, 1);
        if seen <= self.limit as isize {
            return Ok(());
        }
        let window = self.window.as_millis().max(1);
        let into = self.start.elapsed().as_millis() % window;
        Err(((window - into) as u64).div_ceil(1000).max(1))
    }
}

/// Every configured limit; each is off (`None`) unless configured.
#[derive(Default)]
pub struct RateLimits {
    pub open_per_user: Option<RateLimit>,
    pub open_per_client: Option<RateLimit>,
    pub bootstrap_per_user: Option<RateLimit>,
    pub bootstrap_per_client: Option<RateLimit>,
    pub wopi_per_client: Option<RateLimit>,
}

impl RateLimits {
    pub fn from_config(c: &crate::config::RateLimitsConfig) -> Self {
        Self {
            open_per_user: RateLimit::new(c.open_per_user, c.window),
            open_per_client: RateLimit::new(c.open_per_client, c.window),
            bootstrap_per_user: RateLimit::new(c.bootstrap_per_user, c.window),
            bootstrap_per_client: RateLimit::new(c.bootstrap_per_client, c.window),
            wopi_per_client: RateLimit::new(c.wopi_per_client, c.window),
        }
    }

    /// The per-user limit of `scope`: `Err(retry after seconds)` when `user` is over it.
    pub fn user(&self, scope: Scope, user: &str) -> Result<(), u64> {
        let limit = match scope {
            Scope::Open => &self.open_per_user,
            Scope::Bootstrap => &self.bootstrap_per_user,
            Scope::Wopi => &None,
        };
        check(limit.as_ref(), scope, "user", &user)
    }

    /// The per-client-address limit of `scope`.
    pub fn client(&self, scope: Scope, addr: std::net::IpAddr) -> Result<(), u64> {
        let limit = match scope {
            Scope::Open => &self.open_per_client,
            Scope::Bootstrap => &self.bootstrap_per_client,
            Scope::Wopi => &self.wopi_per_client,
        };
        check(limit.as_ref(), scope, "client", &addr)
    }
}

fn check<K: Hash>(
    limit: Option<&RateLimit>,
    scope: Scope,
    by: &'static str,
    key: &K,
) -> Result<(), u64> {
    let Some(limit) = limit else {
        return Ok(());
    };
    limit.admit(key).inspect_err(|_| {
        crate::metrics::metrics().rate_limited(scope.as_str(), by);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_for_the_window_others_do_not() {
        let l = RateLimit::new(3, Duration::from_secs(60)).unwrap();
        for _ in 0..3 {
            assert_eq!(l.admit(&"alice"), Ok(()));
        }
        let wait = l.admit(&"alice").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(l.admit(&"bob"), Ok(()));
    }

    #[test]
    fn a_new_window_admits_again() {
        let l = RateLimit::new(1, Duration::from_millis(200)).unwrap();
        assert!(l.admit(&1).is_ok());
        assert_eq!(l.admit(&1), Err(1));
        std::thread::sleep(Duration::from_millis(450));
        assert!(l.admit(&1).is_ok());
    }

    #[test]
    fn zero_is_off() {
        assert!(RateLimit::new(0, Duration::from_secs(1)).is_none());
        let limits = RateLimits::default();
        for _ in 0..1000 {
            assert!(limits.user(Scope::Open, "alice").is_ok());
        }
    }
}
