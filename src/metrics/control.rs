//! The operator's control point: revocations, back-channel logouts, access re-checks, the
//! shared store, and the sessions and locks the gateway sees. Label values are closed sets and
//! configured office app names only.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{counter, gauge};

pub struct ControlMetrics {
    /// Entries in this replica's revocation set.
    pub revocations: IntGauge,
    /// Revocations added, by scope and by where they came from (`admin`, `logout`, `store`).
    pub revocations_added: IntCounterVec,
    /// Requests refused as revoked, by what presented the token (`gateway`, `wopiserver`,
    /// `open`, `mobile`).
    pub revoked_requests: IntCounterVec,
    /// Back-channel logout requests, by outcome.
    pub backchannel_logouts: IntCounterVec,
    /// Access re-checks with REVA while a document stays open, by outcome.
    pub rechecks: IntCounterVec,
    /// 0 while a configured shared store is unreachable, else 1.
    pub store_up: IntGauge,
    /// Open sessions and held locks this replica knows of, by office app.
    pub sessions: IntGaugeVec,
    pub locks: IntGaugeVec,
    /// Locks released by an operator, by outcome.
    pub lock_releases: IntCounterVec,
}

// Constant definitions: `expect` fires only on a programming error the exposition test catches.
#[allow(clippy::expect_used)]
fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl ControlMetrics {
    pub(super) fn register(r: &Registry) -> Self {
        Self {
            revocations: gauge(
                r,
                "wopigate_revocations",
                "Entries in this replica's revocation set.",
            ),
            revocations_added: counter(
                r,
                "wopigate_revocations_added_total",
                "Revocations added, by scope and source (admin, logout, store).",
                &["scope", "source"],
            ),
            revoked_requests: counter(
                r,
                "wopigate_revoked_requests_total",
                "Requests refused because their token was revoked, by token kind.",
                &["kind"],
            ),
            backchannel_logouts: counter(
                r,
                "wopigate_backchannel_logouts_total",
                "OIDC back-channel logout requests, by outcome.",
                &["outcome"],
            ),
            rechecks: counter(
                r,
                "wopigate_access_rechecks_total",
                "Re-checks of an open document's access with REVA, by outcome.",
                &["outcome"],
            ),
            store_up: gauge(
                r,
                "wopigate_store_up",
                "1 while the shared store is reachable; 0 while it is not (always 1 without a store).",
            ),
            sessions: gauge_vec(
                r,
                "wopigate_sessions",
                "Open office sessions this replica knows of, by office app.",
                &["app"],
            ),
            locks: gauge_vec(
                r,
                "wopigate_locks",
                "WOPI locks held that the gateway saw granted, by office app.",
                &["app"],
            ),
            lock_releases: counter(
                r,
                "wopigate_lock_releases_total",
                "Locks released by an operator, by outcome.",
                &["outcome"],
            ),
        }
    }
}
