//! What the public listener keeps per request, from classification to the access log.

use std::time::{Duration, Instant};

use super::client::Client;
use super::wrapped::{BodyRewrite, Wrapped};
use crate::wopi::route::Route;

pub struct RequestCtx {
    /// The route and WOPI operation, classified once in `request_filter`.
    pub route: Route,
    pub request_id: String,
    /// Who the client is (behind a trusted load balancer: from the forwarded chain).
    pub client: Client,
    pub started: Instant,
    /// The configured office app the WOPI token belongs to.
    pub app: Option<String>,
    pub upstream_started: Option<Instant>,
    /// Time until the wopiserver's response headers arrived (or spent on upstreams by an
    /// answer served here).
    pub upstream_took: Option<Duration>,
    /// A gateway-token request: the token and the wopiserver token it is swapped for.
    pub wrapped: Option<Wrapped>,
    /// A JSON answer held back to be rewritten for the gateway-token holder.
    pub rewrite: Option<BodyRewrite>,
    /// Request body progress: when its first bytes came and how many so far (minimum rate).
    pub body_started: Option<Instant>,
    pub body_bytes: u64,
    /// A pass-through CheckFileInfo, collected here to say what the gateway decides
    /// (Save As, rename) instead of what the wopiserver would.
    pub pass_through_body: Option<Vec<u8>>,
    /// Set at admission for a pass-through CheckFileInfo: what its answer must say.
    pub pass_through: Option<crate::tokens::swap::Decided>,
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
            app: None,
            upstream_started: None,
            upstream_took: None,
            wrapped: None,
            rewrite: None,
            body_started: None,
            body_bytes: 0,
            pass_through_body: None,
            pass_through: None,
            attempt: Default::default(),
            _in_flight: crate::drain::InFlight::enter("public"),
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
