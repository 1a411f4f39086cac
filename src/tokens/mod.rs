//! Every token format the gateway reads or writes, one module each (style.md principle 10):
//! where tokens travel in a request ([`carriers`]), the gateway's own sealed WOPI tokens
//! ([`gateway`]) and the wopiserver tokens remembered behind them ([`remembered`]), REVA's
//! access tokens ([`reva`]), and the claims of a wopiserver token that may be read without its
//! key ([`wopiserver`]). Other modules take the typed values these return.

pub mod carriers;
pub mod gateway;
pub mod remembered;
pub mod reva;
pub mod swap;
pub mod wopiserver;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall clock in Unix seconds, as token expiries count.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A cached token (or what was derived from one) that is good until a Unix time.
pub trait Expires {
    fn expires_at(&self) -> u64;
}

/// The expiry policy of every token cache: an entry goes when what it holds ends.
pub struct AtExpiry;

impl<K, V: Expires> moka::Expiry<K, V> for AtExpiry {
    fn expire_after_create(&self, _: &K, value: &V, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(
            value.expires_at().saturating_sub(now()),
        ))
    }
}

/// [`AtExpiry`], or sooner when unused for `idle`: memory follows the sessions in use, not
/// every session ever opened.
pub struct AtExpiryOrIdle {
    pub idle: Duration,
}

impl AtExpiryOrIdle {
    fn left<V: Expires>(&self, value: &V) -> Option<Duration> {
        let until = Duration::from_secs(value.expires_at().saturating_sub(now()));
        Some(until.min(self.idle))
    }
}

impl<K, V: Expires> moka::Expiry<K, V> for AtExpiryOrIdle {
    fn expire_after_create(&self, _: &K, value: &V, _: Instant) -> Option<Duration> {
        self.left(value)
    }

    fn expire_after_read(
        &self,
        _: &K,
        value: &V,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        self.left(value)
    }

    fn expire_after_update(
        &self,
        _: &K,
        value: &V,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.left(value)
    }
}
