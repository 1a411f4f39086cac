//! One access-log line and the request metrics for every request of the public and internal
//! listeners. Path only: queries carry access tokens.

use std::time::{Duration, Instant};

use pingora::proxy::Session;

use crate::wopi::operation::WopiOperation;

/// What a listener knows about a finished request.
pub struct Entry<'a> {
    pub listener: &'static str,
    pub request_id: &'a str,
    /// The client's address (behind a trusted load balancer: from the forwarded chain).
    pub client: Option<std::net::IpAddr>,
    /// Closed label of the route.
    pub route: &'static str,
    pub operation: Option<WopiOperation>,
    /// The configured office app of the WOPI token.
    pub app: Option<&'a str>,
    pub started: Instant,
    pub upstream_took: Option<Duration>,
}

pub fn record(session: &Session, e: Option<&pingora::Error>, entry: &Entry<'_>) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let class = crate::metrics::status_class(status);
    let took = entry.started.elapsed();
    let (bytes_in, bytes_out) = (session.body_bytes_read(), session.body_bytes_sent());
    let m = crate::metrics::metrics();
    m.count_request(entry.listener, entry.route, class);
    let app = entry.app.unwrap_or("unknown");
    if let Some(op) = entry.operation {
        m.observe_wopi(
            op.as_str(),
            app,
            class,
            took.as_secs_f64(),
            bytes_in as u64,
            bytes_out as u64,
        );
    }
    let req = session.req_header();
    if crate::telemetry::access_json_enabled() {
        use crate::telemetry::Field;
        let opt_f64 =
            |d: Option<Duration>| d.map_or(Field::Absent, |d| Field::F64(d.as_secs_f64() * 1000.0));
        crate::telemetry::access_json(
            "request",
            &[
                ("listener", Field::Str(entry.listener)),
                ("request_id", Field::Str(entry.request_id)),
                ("client", entry.client.map_or(Field::Absent, Field::Ip)),
                ("method", Field::Str(req.method.as_str())),
                ("path", Field::Str(req.uri.path())),
                ("route", Field::Str(entry.route)),
                (
                    "operation",
                    Field::Str(entry.operation.map_or("", WopiOperation::as_str)),
                ),
                ("app", Field::Str(app)),
                ("status", Field::U64(status.into())),
                ("duration_ms", Field::F64(took.as_secs_f64() * 1000.0)),
                ("upstream_ms", opt_f64(entry.upstream_took)),
                ("bytes_in", Field::U64(bytes_in as u64)),
                ("bytes_out", Field::U64(bytes_out as u64)),
                (
                    "error",
                    e.map_or(Field::Absent, |e| Field::Str(e.etype().as_str())),
                ),
            ],
        );
        return;
    }
    tracing::info!(
        target: "wopigate::access",
        listener = entry.listener,
        request_id = %entry.request_id,
        client = entry.client.map(tracing::field::display),
        method = %req.method,
        path = %req.uri.path(),
        route = entry.route,
        operation = entry.operation.map_or("", WopiOperation::as_str),
        app,
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        upstream_ms = entry.upstream_took.map(|d| d.as_secs_f64() * 1000.0),
        bytes_in,
        bytes_out,
        error = e.map(|e| e.etype().as_str()),
        "request"
    );
}

/// pingora's error-log summary of a request; its default includes the query (tokens).
pub fn summary(listener: &str, session: &Session, request_id: &str) -> String {
    let req = session.req_header();
    format!(
        "{listener}{}{} {} request_id={request_id}",
        if listener.is_empty() { "" } else { " " },
        req.method,
        req.uri.path(),
    )
}
