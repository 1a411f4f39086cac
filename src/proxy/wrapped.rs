//! Gateway-token requests on the proxied path. On the way up the request is pointed at the
//! wopiserver's inode with the wopiserver's token; on the way down a JSON answer that embeds
//! wopiserver tokens (CheckFileInfo, PutRelativeFile) is held whole and rewritten
//! ([`crate::tokens::swap`]) so the office app never sees one.

use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::tokens::remembered::TokenWrap;
use crate::tokens::swap::{self, Decided, MobileAmend, MobileFlags};
use crate::wopi::operation::WopiOperation;

/// A request with a gateway token, and the wopiserver token it is swapped for.
pub struct Wrapped {
    pub token: String,
    pub claims: Claims,
    pub upstream: Secret,
}

/// A JSON answer held back until complete, to be rewritten for a gateway-token holder.
pub struct BodyRewrite {
    buf: Vec<u8>,
    operation: WopiOperation,
    /// What CheckFileInfo must say about what the gateway serves.
    decided: Decided,
}

/// Larger answers are not a CheckFileInfo or PutRelativeFile JSON: refused, not passed through.
const MAX_REWRITE_BYTES: usize = 1024 * 1024;

fn refuse(why: &'static str) -> Box<pingora::Error> {
    pingora::Error::explain(ErrorType::InternalError, why)
}

impl Wrapped {
    /// Points the upstream request at the wopiserver's inode and its token, and drops the
    /// gateway token from `Authorization` (Office for the web repeats it there).
    pub fn swap_upstream(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        let Some(resource) = &self.claims.resource else {
            return Ok(());
        };
        let target = swap::upstream_target(
            req.uri.path(),
            req.uri.query().unwrap_or_default(),
            resource,
            self.upstream.expose(),
        );
        let uri =
            http::Uri::try_from(target).map_err(|_| refuse("cannot build the upstream URI"))?;
        req.set_uri(uri);
        req.remove_header(&http::header::AUTHORIZATION);
        Ok(())
    }

    /// The token may write (opened, and not downgraded, read-write).
    pub fn writable(&self) -> bool {
        self.claims.view_mode.as_deref() == Some(crate::wopiserver::ViewMode::ReadWrite.as_str())
    }

    /// Whether this answer must be rewritten; if so its length changes, so it goes out without
    /// `Content-Length` (chunked).
    pub fn rewrite_for(
        &self,
        operation: WopiOperation,
        response: &mut ResponseHeader,
        decided: Decided,
    ) -> Option<BodyRewrite> {
        if response.status != http::StatusCode::OK || !operation.answer_carries_tokens() {
            return None;
        }
        response.remove_header(&http::header::CONTENT_LENGTH);
        Some(BodyRewrite {
            buf: Vec::new(),
            operation,
            decided,
        })
    }
}

impl BodyRewrite {
    /// Collects the answer; at its end, replaces it with the rewritten one. An answer that
    /// cannot be made safe is an error, never passed on.
    pub fn take(
        &mut self,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        w: &Wrapped,
        wrap: Option<&TokenWrap>,
        mobile: Option<MobileFlags>,
    ) -> pingora::Result<()> {
        if let Some(chunk) = body.take() {
            if self.buf.len() + chunk.len() > MAX_REWRITE_BYTES {
                return Err(refuse("wopiserver JSON answer too large to rewrite"));
            }
            self.buf.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            return Ok(());
        }
        let rewritten = if self.operation == WopiOperation::PutRelativeFile {
            let wrap = wrap.ok_or_else(|| refuse("gateway tokens are off"))?;
            swap::put_relative(&self.buf, &w.claims, |c| wrap.keys.issue(c))
        } else {
            swap::check_file_info(
                &self.buf,
                w.upstream.expose(),
                &w.token,
                mobile.filter(|_| w.claims.mobile).map(|flags| MobileAmend {
                    flags,
                    user_id: &w.claims.user.id.opaque_id,
                }),
                self.decided,
            )
        };
        // Never pass on an answer that may still carry the wopiserver token.
        let rewritten =
            rewritten.ok_or_else(|| refuse("wopiserver answer is not the expected JSON"))?;
        *body = Some(bytes::Bytes::from(rewritten));
        Ok(())
    }
}
