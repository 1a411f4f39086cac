//! The proxied WOPI call (`/wopi/files/*`), pingora-free: admission (one token, not expired, a
//! valid proof; a gateway token swapped for the wopiserver token behind it, renewed when
//! needed), the answer plan decided once at admission (which the HTTP edge's response phases
//! only execute), the remembered tokens kept right after the answer, and Save As, which the
//! gateway serves itself.
//!
//! A new WOPI operation the gateway changes goes into [`Flow::admit`] (refused, or a plan of
//! its own in [`plan`]); a new check on every token goes into [`admission`].

mod activity;
pub mod admission;
pub mod plan;
mod recheck;
mod renew;
pub mod save_as;

use std::sync::Arc;

use crate::error::{ApiError, ErrorCode};
use crate::open::OpenService;
use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::tokens::remembered::{Renamed, TokenWrap};
use crate::tokens::swap::{self, Decided, MobileFlags};
use crate::wopi::operation::WopiOperation;
pub use activity::Answered;
pub use admission::Guard;
pub use plan::{AnswerPlan, HeadChange};

/// Gateway tokens, when a token key is configured: the keys and remembered wopiserver tokens,
/// and the open flow that renews them. What needs gateway tokens (Save As, Office for
/// iOS/Android) is built with this, or not at all.
pub struct GatewayTokens {
    pub wrap: Arc<TokenWrap>,
    /// The open flow renewal runs again; its backends are the ones Save As uses.
    pub open: Arc<OpenService>,
}

/// The proxied WOPI call's settings and services for one configuration generation.
pub struct Flow {
    pub guard: Guard,
    pub tokens: Option<Arc<GatewayTokens>>,
    /// Save As served here (`wopi.put_relative`, gateway tokens on).
    pub save_as: Option<Arc<GatewayTokens>>,
    /// Turn the wopiserver's GetLock 404 on an unlocked file into the spec's 200.
    pub normalize_get_lock: bool,
    /// Forward RenameFile for gateway tokens (`wopi.rename`); else 501.
    pub rename: bool,
    /// Office for iOS/Android flags for CheckFileInfo; `None` when `[mobile]` is off.
    pub mobile: Option<MobileFlags>,
}

/// A request the gateway lets through, with everything decided about it.
pub struct Admitted {
    /// The configured office app the token belongs to, for metrics and the access log.
    pub app: Option<String>,
    /// The gateway token the request carries, if any.
    pub gateway: Option<GatewayCall>,
    /// Else the wopiserver token's session.
    pub pass_through: Option<admission::PassThrough>,
    /// A wopiserver token opened read-write.
    pub read_write: bool,
    pub plan: AnswerPlan,
}

/// A request with a gateway token, and the wopiserver token it is swapped for.
pub struct GatewayCall {
    pub token: String,
    pub claims: Claims,
    pub upstream: Secret,
    tokens: Arc<GatewayTokens>,
}

impl GatewayCall {
    /// The upstream request target: the wopiserver's inode and its token instead of ours.
    pub fn upstream_target(&self, path: &str, query: &str) -> Option<String> {
        let file = self.claims.file()?;
        Some(swap::upstream_target(
            path,
            query,
            &file.resource,
            self.upstream.expose(),
        ))
    }

    /// What the wopiserver's answer means for the remembered wopiserver tokens: a renamed
    /// file's tokens name its old path, and a token whose file the wopiserver no longer finds
    /// (renamed through another replica, say) is renewed on its next use — but not for
    /// GetLock's 404 with an empty `X-WOPI-Lock`, the wopiserver's "not locked".
    pub async fn after_answer(
        &self,
        operation: WopiOperation,
        status: http::StatusCode,
        headers: &http::HeaderMap,
    ) {
        let not_locked = || {
            operation == WopiOperation::GetLock
                && headers.get("x-wopi-lock").is_some_and(|v| v.is_empty())
        };
        match (operation, status) {
            (WopiOperation::RenameFile, http::StatusCode::OK) => {
                if let Some(f) = self.claims.file() {
                    self.tokens.wrap.forget_renamed(Renamed::File {
                        storage_id: f.resource.storage_id.clone(),
                        opaque_id: f.resource.opaque_id.clone(),
                    });
                }
            }
            (_, http::StatusCode::NOT_FOUND) if !not_locked() => {
                self.tokens.wrap.forget(&self.token).await
            }
            _ => {}
        }
    }
}

impl Flow {
    /// What CheckFileInfo says about the operations the gateway serves or refuses itself, for
    /// a token that may (`writable`) or may not write.
    fn decided(&self, gateway_token: bool, writable: bool) -> Decided {
        let rename = self.rename && gateway_token;
        Decided {
            can_not_write_relative: !(self.save_as.is_some() && writable),
            supports_rename: rename,
            user_can_rename: rename && writable,
        }
    }

    /// Admits a `/wopi/files/*` request, or says why not; a gateway token is swapped for the
    /// wopiserver token behind it (renewed when needed), and what becomes of the answer is
    /// decided here, once.
    pub async fn admit(
        &self,
        head: &http::request::Parts,
        operation: WopiOperation,
        trace_id: &str,
    ) -> Result<Admitted, ApiError> {
        // WOPI never upgrades; an early-data upgrade is a smuggling vector (security.md P4).
        if head.headers.contains_key(http::header::UPGRADE) {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "protocol upgrade is not allowed",
            ));
        }
        let checked = self.guard.check(head, self.tokens.as_ref()).await?;
        // The wopiserver renames by the path in its token, whatever its `enablerename` says:
        // only a gateway token's session can be carried over to the new name. Refused before
        // anything is renewed.
        if operation == WopiOperation::RenameFile && !(self.rename && checked.gateway.is_some()) {
            return Err(ApiError::new(
                ErrorCode::NotImplemented,
                "renaming files is not supported here",
            ));
        }
        let gateway = match checked.gateway {
            Some((token, claims, tokens)) => {
                let upstream = tokens
                    .upstream_token(&token, &claims, trace_id)
                    .await
                    .map_err(ApiError::hiding_existence)?;
                Some(GatewayCall {
                    token,
                    claims,
                    upstream,
                    tokens,
                })
            }
            None => None,
        };
        let plan = match &gateway {
            Some(g) => {
                let decided = self.decided(true, g.claims.writable());
                AnswerPlan::for_gateway_token(operation, g, decided, self.mobile)
            }
            None => {
                AnswerPlan::for_wopiserver_token(operation, self.decided(false, checked.read_write))
            }
        };
        let plan = if self.normalize_get_lock && operation == WopiOperation::GetLock {
            AnswerPlan::GetLockFix
        } else {
            plan
        };
        Ok(Admitted {
            app: checked.app,
            gateway,
            pass_through: checked.pass_through,
            read_write: checked.read_write,
            plan,
        })
    }
}
