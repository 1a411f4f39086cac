//! PutRelativeFile on pingora's side ([`crate::wopi_call::save_as`] has the rules): prepared in
//! `request_filter`, then the body is read from the client chunk by chunk and streamed into
//! the wopiserver's PutFile of the new file through a small bounded channel — never held
//! whole. A body that does not arrive whole never completes upstream (the upload is aborted,
//! the wopiserver writes nothing) and the file created for it is removed.

use bytes::Bytes;
use pingora::proxy::Session;

use super::{Gateway, RequestCtx, respond};
use crate::error::{ApiError, ErrorCode, Reply};
use crate::tokens::carriers;
use crate::wopi_call::GatewayTokens;
use crate::wopi_call::save_as::{self, Caller};

/// Chunks in flight between the client and the wopiserver.
const CHANNEL_CHUNKS: usize = 4;

impl Gateway {
    /// Who asks, from the gateway token (already checked) or the wopiserver token.
    async fn caller(
        tokens: &GatewayTokens,
        session: &Session,
        ctx: &RequestCtx,
    ) -> Result<Caller, Reply> {
        if let Some(call) = ctx.wopi.as_ref().and_then(|w| w.gateway.as_ref()) {
            return Ok(tokens.gateway_caller(call).await?);
        }
        let req = session.req_header();
        let token = carriers::access_token(req.uri.query())
            .ok()
            .flatten()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "access_token missing"))?;
        let path_query = req.uri.path_and_query().map_or("", |p| p.as_str());
        Ok(tokens.wopiserver_caller(&token, path_query).await?)
    }

    /// Serves a PutRelativeFile whole: the target prepared, the body streamed into it, the
    /// answer written. Always answered here (`Ok(true)`), never proxied.
    pub(super) async fn save_as(
        &self,
        tokens: &GatewayTokens,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let prepared = async {
            let headers = &session.req_header().headers;
            let target = save_as::target_of(headers)?;
            save_as::check_size(headers)?;
            let caller = Self::caller(tokens, session, ctx).await?;
            tokens
                .prepare_save_as(&caller, target, &self.public_url, &ctx.request_id)
                .await
        }
        .await;
        let mut p = match prepared {
            Ok(p) => p,
            Err(r) => {
                respond::reply(session, r, &ctx.request_id).await?;
                return Ok(true);
            }
        };
        let length = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let started = std::time::Instant::now();
        let upload = tokens.open.backends.wopiserver.put_file(
            (&p.resource.storage_id, &p.resource.opaque_id),
            &p.upstream_target,
            p.lock.as_deref(),
            length,
            reqwest::Body::wrap_stream(body),
        );
        let feed = feed_body(session, tx, started, &self.limits);
        let (uploaded, fed) = tokio::join!(upload, feed);
        ctx.body_bytes = *fed.as_ref().unwrap_or(&0);
        ctx.upstream_took = Some(started.elapsed());
        let outcome = stored(&fed, uploaded);
        tokens.finish_save_as(&mut p, outcome.is_ok()).await;
        match outcome {
            Ok(()) => respond::json(session, 200, p.answer, &ctx.request_id, &[]).await?,
            Err(e) => respond::error(session, &e, &ctx.request_id).await?,
        }
        Ok(true)
    }
}

type Chunk = Result<Bytes, std::io::Error>;

/// Reads the client's body chunk by chunk into the upload; the number of bytes read, or why
/// the body did not arrive whole (then the upload is told, and must not complete).
async fn feed_body(
    session: &mut Session,
    tx: tokio::sync::mpsc::Sender<Chunk>,
    started: std::time::Instant,
    limits: &crate::config::Limits,
) -> Result<u64, ApiError> {
    // Owned here: dropped when the body ends, which ends the upload's stream.
    let mut read: u64 = 0;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                read += chunk.len() as u64;
                if super::limits::too_slow(read, started.elapsed(), limits) {
                    let _ = tx
                        .send(Err(std::io::Error::other("body below the minimum rate")))
                        .await;
                    return Err(ApiError::new(
                        ErrorCode::RequestTimeout,
                        "request body arrives below the minimum rate",
                    ));
                }
                if tx.send(Ok(chunk)).await.is_err() {
                    // The upload ended early; its answer says why.
                    return Ok(read);
                }
            }
            Ok(None) => return Ok(read),
            Err(_) => {
                // Aborted: the upload must not complete as if the body were whole.
                let _ = tx
                    .send(Err(std::io::Error::other("client went away")))
                    .await;
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "the request body did not arrive whole",
                ));
            }
        }
    }
}

/// Whether the body is stored: it arrived whole and the wopiserver's PutFile said 200.
fn stored(
    fed: &Result<u64, ApiError>,
    uploaded: Result<(u16, Option<String>), crate::wopiserver::WopiserverError>,
) -> Result<(), ApiError> {
    match (fed, uploaded) {
        (Err(e), _) => Err(e.clone()),
        (Ok(_), Ok((200, _))) => Ok(()),
        (Ok(_), Ok((409, _))) => Err(ApiError::new(
            ErrorCode::Conflict,
            "the target changed meanwhile",
        )),
        (Ok(_), Ok((413, _))) => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the file is too large",
        )),
        (Ok(_), Ok(_)) => Err(ApiError::new(
            ErrorCode::UpstreamError,
            "the wopiserver did not store the file",
        )),
        (Ok(_), Err(e)) => Err(ApiError::from(e)),
    }
}
