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

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in Unix seconds, as token expiries count.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
