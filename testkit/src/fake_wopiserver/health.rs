//! `GET /wopi`: v11.5.0's index page with its markup (`src/wopiserver.py`), always 200; the text
//! carries the verdict of the cs3 storage probe, `ListAuthProviders` without a token.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{FakeWopiserver, text};

/// The page, as the real server fills it (`tests/fixtures/wopiserver/index.html`).
pub(super) fn page(status: &str) -> String {
    include_str!("../../../tests/fixtures/wopiserver/index.html").replace("{status}", status)
}

pub(super) async fn health(State(s): State<FakeWopiserver>) -> Response {
    s.inner.health_probes.fetch_add(1, Relaxed);
    let verdict = match s.reva() {
        Ok(reva) if reva.probe().await.is_ok() => "OK",
        _ => "FAIL",
    };
    text(StatusCode::OK, &page(verdict))
}
