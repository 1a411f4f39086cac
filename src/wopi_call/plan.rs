//! What becomes of the wopiserver's answer, decided once at admission and only executed by
//! the response phases: streamed through, GetLock's "not locked" corrected, or a JSON answer
//! held whole and rewritten — a pass-through CheckFileInfo saying what the gateway decides, a
//! gateway-token CheckFileInfo or PutRelativeFile carrying no wopiserver token
//! ([`crate::tokens::swap`]).

use std::sync::Arc;

use bytes::Bytes;

use super::GatewayCall;
use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::tokens::remembered::TokenWrap;
use crate::tokens::swap::{self, Decided, MobileAmend, MobileFlags};
use crate::wopi::operation::WopiOperation;

/// Larger answers are not a CheckFileInfo or PutRelativeFile JSON: refused, not passed through.
const MAX_HELD_BYTES: usize = 1024 * 1024;

pub enum AnswerPlan {
    /// Streamed as the wopiserver sends it.
    PassThrough,
    /// GetLock on an unlocked file: the wopiserver's 404 with an empty `X-WOPI-Lock` becomes
    /// the 200 the WOPI spec wants (cs3-wopiserver.md §9.1).
    GetLockFix,
    /// A 200 JSON answer held whole, then rewritten.
    Rewrite {
        rewrite: Rewrite,
        held: Option<Vec<u8>>,
    },
}

/// How a held answer is rewritten.
pub enum Rewrite {
    /// A wopiserver token's CheckFileInfo: its token stays, the gateway's decisions replace
    /// the wopiserver's; an answer that is not JSON passes unchanged.
    PassThroughCheckFileInfo(Decided),
    /// A gateway token's CheckFileInfo: the wopiserver token replaced by the gateway token.
    CheckFileInfo {
        upstream: Secret,
        token: String,
        decided: Decided,
        /// Office for iOS/Android's properties, with the user they are for.
        mobile: Option<(MobileFlags, String)>,
    },
    /// A gateway token's PutRelativeFile (forwarded when the gateway does not serve Save As):
    /// the new file gets a gateway token of its own.
    PutRelativeFile {
        wrap: Arc<TokenWrap>,
        claims: Box<Claims>,
    },
}

/// What the response head becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadChange {
    Keep,
    /// Answer 200 instead.
    Ok200,
    /// The body is held and rewritten: its length changes (it goes out chunked) and the head
    /// waits for it.
    Hold,
}

/// A held answer that cannot be made safe: an error, never passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("wopiserver JSON answer too large to rewrite")]
    TooLarge,
    #[error("wopiserver answer is not the expected JSON")]
    NotTheJson,
}

impl AnswerPlan {
    pub fn for_wopiserver_token(operation: WopiOperation, decided: Decided) -> Self {
        match operation {
            WopiOperation::CheckFileInfo => {
                Self::rewrite(Rewrite::PassThroughCheckFileInfo(decided))
            }
            _ => Self::PassThrough,
        }
    }

    pub fn for_gateway_token(
        operation: WopiOperation,
        call: &GatewayCall,
        decided: Decided,
        mobile: Option<MobileFlags>,
    ) -> Self {
        let claims = &call.claims;
        match operation {
            WopiOperation::CheckFileInfo => Self::rewrite(Rewrite::CheckFileInfo {
                upstream: call.upstream.clone(),
                token: call.token.clone(),
                decided,
                mobile: mobile
                    .filter(|_| claims.mobile)
                    .map(|flags| (flags, claims.user.id.opaque_id.clone())),
            }),
            WopiOperation::PutRelativeFile => Self::rewrite(Rewrite::PutRelativeFile {
                wrap: call.tokens.wrap.clone(),
                claims: Box::new(claims.clone()),
            }),
            _ => Self::PassThrough,
        }
    }

    fn rewrite(rewrite: Rewrite) -> Self {
        Self::Rewrite {
            rewrite,
            held: None,
        }
    }

    /// The answer's head arrived: what it becomes. Only a 200 is rewritten.
    pub fn on_head(&mut self, status: http::StatusCode, headers: &http::HeaderMap) -> HeadChange {
        match self {
            Self::PassThrough => HeadChange::Keep,
            Self::GetLockFix
                if status == http::StatusCode::NOT_FOUND
                    && headers.get("x-wopi-lock").is_some_and(|v| v.is_empty()) =>
            {
                HeadChange::Ok200
            }
            Self::GetLockFix => HeadChange::Keep,
            Self::Rewrite { held, .. } if status == http::StatusCode::OK => {
                *held = Some(Vec::new());
                HeadChange::Hold
            }
            Self::Rewrite { .. } => HeadChange::Keep,
        }
    }

    /// A piece of the answer's body: held while a rewrite collects it, replaced by the
    /// rewritten answer at its end.
    pub fn on_body(&mut self, body: &mut Option<Bytes>, end: bool) -> Result<(), RewriteError> {
        let Self::Rewrite {
            rewrite,
            held: Some(buf),
        } = self
        else {
            return Ok(());
        };
        if let Some(chunk) = body.take() {
            if buf.len() + chunk.len() > MAX_HELD_BYTES {
                return Err(RewriteError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        if end {
            let whole = std::mem::take(buf);
            *body = Some(Bytes::from(rewrite.apply(whole)?));
        }
        Ok(())
    }
}

impl Rewrite {
    fn apply(&self, whole: Vec<u8>) -> Result<Vec<u8>, RewriteError> {
        let rewritten = match self {
            Self::PassThroughCheckFileInfo(decided) => {
                return Ok(swap::pass_through_check_file_info(&whole, *decided).unwrap_or(whole));
            }
            Self::CheckFileInfo {
                upstream,
                token,
                decided,
                mobile,
            } => swap::check_file_info(
                &whole,
                upstream.expose(),
                token,
                mobile.as_ref().map(|(flags, user_id)| MobileAmend {
                    flags: *flags,
                    user_id,
                }),
                *decided,
            ),
            Self::PutRelativeFile { wrap, claims } => {
                swap::put_relative(&whole, claims, |c| wrap.keys.issue(c))
            }
        };
        // Never pass on an answer that may still carry the wopiserver token.
        rewritten.ok_or(RewriteError::NotTheJson)
    }
}
