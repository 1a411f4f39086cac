//! Writing the gateway's own answers (JSON) through pingora.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::{ApiError, Reply};

/// Writes a complete JSON response.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    let mut all = Vec::with_capacity(extra.len() + 1);
    all.push(("X-Request-Id", request_id));
    all.extend_from_slice(extra);
    body_with(session, status, "application/json", body, &all).await
}

/// Writes a complete response of any type.
pub async fn body(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
) -> pingora::Result<()> {
    body_with(session, status, content_type, body, &[]).await
}

async fn body_with(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    let mut h = ResponseHeader::build(status, Some(4 + extra.len()))?;
    h.insert_header(http::header::CONTENT_TYPE, content_type)?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    // Answers carry access tokens: never cache them anywhere.
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (k, v) in extra {
        h.insert_header(*k, *v)?;
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

/// Writes one of the gateway's own answers.
pub async fn reply(session: &mut Session, r: Reply, request_id: &str) -> pingora::Result<()> {
    let extra: Vec<(&'static str, &str)> =
        r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    json(session, r.status, r.body, request_id, &extra).await
}

pub async fn error(session: &mut Session, e: &ApiError, request_id: &str) -> pingora::Result<()> {
    reply(session, Reply::from(e), request_id).await
}
