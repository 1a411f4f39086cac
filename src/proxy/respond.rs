//! Writing the gateway's own answers (JSON) through pingora.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::ApiError;

/// Writes a complete JSON response.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    request_id: &str,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    let mut h = ResponseHeader::build(status, Some(6 + extra.len()))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    // Answers carry access tokens: never cache them anywhere.
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    h.insert_header("X-Request-Id", request_id)?;
    for (k, v) in extra {
        h.insert_header(*k, *v)?;
    }
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

pub async fn error(session: &mut Session, e: &ApiError, request_id: &str) -> pingora::Result<()> {
    let mut extra = Vec::new();
    if let Some(challenge) = e.www_authenticate() {
        extra.push(("WWW-Authenticate", challenge));
    }
    json(session, e.status().as_u16(), e.body(), request_id, &extra).await
}
