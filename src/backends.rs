//! The outside components every flow talks to, built once per configuration generation by
//! `app` and shared by the open, WOPI-call and mobile flows: identity (the OIDC validator and
//! the token exchanger), REVA, the wopiserver instances, office discovery, and the rate limits.

use std::sync::Arc;

use crate::auth::OidcValidator;
use crate::discovery::DiscoveryCache;
use crate::exchange::Exchanger;
use crate::rate::RateLimits;
use crate::reva::RevaClient;
use crate::wopiserver::WopiserverClient;

pub struct Backends {
    pub validator: Arc<OidcValidator>,
    pub exchanger: Arc<Exchanger>,
    pub reva: RevaClient,
    pub wopiserver: Arc<WopiserverClient>,
    pub discovery: Arc<DiscoveryCache>,
    /// `[rate_limits]`: per client at the edge, per user in the flows once the user is known.
    pub rate_limits: Arc<RateLimits>,
    /// Revocations (and the store replicas share them through): the process's, not the
    /// configuration's.
    pub control: Arc<crate::control::Control>,
}
