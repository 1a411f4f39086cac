//! What the public listener keeps per request, from classification to the access log.

use std::time::{Duration, Instant};

use super::client::Client;
use crate::wopi::route::Route;
use crate::wopi_call::Admitted;

pub struct RequestCtx {
    /// The route and WOPI operation, classified once in `request_filter`.
    pub route: Route,
    pub request_id: String,
    /// Who the client is (behind a trusted load balancer: from the forwarded chain).
    pub client: Client,
    pub started: Instant,
    pub upstream_started: Option<Instant>,
    /// Time until the wopiserver's response headers arrived (or spent on upstreams by an
    /// answer served here).
    pub upstream_took: Option<Duration>,
    /// A `/wopi/files/*` request let through, with what becomes of its answer.
    pub wopi: Option<Admitted>,
    /// Request body progress: when its first bytes came and how many so far (minimum rate).
    pub body_started: Option<Instant>,
    pub body_bytes: u64,
    /// The wopiserver instance serving the request and the ones that refused it.
    pub attempt: super::balance::Attempt,
    _in_flight: crate::drain::InFlight,
}

impl RequestCtx {
    pub fn new() -> Self {
        Self {
            route: Route::NotFound,
            request_id: String::new(),
            client: Client::default(),
            started: Instant::now(),
            upstream_started: None,
            upstream_took: None,
            wopi: None,
            body_started: None,
            body_bytes: 0,
            attempt: Default::default(),
            _in_flight: crate::drain::InFlight::enter("public"),
        }
    }
}

impl RequestCtx {
    /// The configured office app the WOPI token belongs to.
    pub fn app(&self) -> Option<&str> {
        self.wopi.as_ref().and_then(|w| w.app.as_deref())
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
