//! Admission of proxied `/wopi/files/*` requests before anything reaches the wopiserver: one access
//! token, not expired (wopiserver deviation: it would answer 500), and a valid proof when the
//! token's office app publishes proof keys (wopi.md §10). A token that names no configured app
//! (an empty `appname`, as legacy `/iop/open` tokens carry) is not let off the proof check: it
//! may come from any configured app, so a proof must verify with one of their keys.

use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;

use super::GatewayTokens;
use crate::config::{OfficeApp, ProofMode};
use crate::control::Control;
use crate::control::revocation::Presented;
use crate::discovery::DiscoveryCache;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{file_id_of_path, path_matches};
use crate::tokens::gateway::{self, Claims};
use crate::tokens::{carriers, now, wopiserver};
use crate::wopi::proof::{self, ProofKeys, Verdict};

/// Settings and shared state the checks need.
pub struct Guard {
    pub discovery: Arc<DiscoveryCache>,
    pub public_url: String,
    pub reject_expired_tokens: bool,
    /// Wopiserver tokens read recently.
    pub seen: wopiserver::Seen,
    /// What is revoked.
    pub control: Arc<Control>,
}

/// A request the checks let through.
pub struct Checked {
    /// The configured office app the token belongs to, for metrics and the access log.
    pub app: Option<String>,
    /// Set when the request carries a gateway token (to be swapped before proxying).
    pub gateway: Option<(String, Claims, Arc<GatewayTokens>)>,
    /// A wopiserver token opened read-write (pass-through tokens only).
    pub read_write: bool,
    /// A wopiserver token's session: the end of the token and whose it is.
    pub pass_through: Option<PassThrough>,
}

/// A pass-through wopiserver token, as the session list needs it.
pub struct PassThrough {
    /// The token's signature end: the session's key (never the whole token).
    pub tail: Box<str>,
    pub holder: Arc<wopiserver::Holder>,
}

fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Guard {
    /// Checks the request before anything reaches the wopiserver; gateway tokens are
    /// accepted when `tokens` are on.
    pub async fn check(
        &self,
        req: &Parts,
        tokens: Option<&Arc<GatewayTokens>>,
    ) -> Result<Checked, ApiError> {
        let invalid = |m: &str| ApiError::new(ErrorCode::InvalidToken, m);
        let token = carriers::access_token(req.uri.query())
            .map_err(|_| ApiError::new(ErrorCode::BadRequest, "more than one access_token"))?
            .ok_or_else(|| invalid("access_token missing"))?;
        if gateway::is_gateway_token(&token) {
            let tokens = tokens.ok_or_else(|| invalid("gateway tokens are not accepted here"))?;
            return self
                .check_gateway_token(req, token.into_owned(), tokens)
                .await;
        }
        let facts = self
            .seen
            .facts(&token)
            .ok_or_else(|| invalid("access token is not a WOPI token"))?;
        if self.reject_expired_tokens && facts.exp <= now() {
            return Err(invalid("access token expired"));
        }
        if self
            .control
            .revoked(&Presented::wopiserver(&facts.holder), "wopiserver")
        {
            return Err(ApiError::revoked());
        }
        let app = match self.discovery.app(&facts.appname) {
            Some(app) => {
                self.check_proof(req, app, &token).await?;
                Some(app.name.clone())
            }
            None => {
                self.check_proof_any_app(req, &token).await?;
                None
            }
        };
        let tail = token
            .get(token.len().saturating_sub(32)..)
            .unwrap_or(&token);
        Ok(Checked {
            app,
            gateway: None,
            read_write: facts.read_write,
            pass_through: Some(PassThrough {
                tail: tail.into(),
                holder: facts.holder,
            }),
        })
    }

    /// A gateway token: sealed by our key, unexpired, for a file, and for *this* file.
    async fn check_gateway_token(
        &self,
        req: &Parts,
        token: String,
        tokens: &Arc<GatewayTokens>,
    ) -> Result<Checked, ApiError> {
        let invalid = |m: &str| ApiError::new(ErrorCode::InvalidToken, m);
        let claims = tokens
            .wrap
            .keys
            .verify(&token, now())
            .map_err(|e| invalid(&e.to_string()))?;
        let kind = if claims.mobile { "mobile" } else { "gateway" };
        if self.control.revoked(&Presented::gateway(&claims), kind) {
            return Err(ApiError::revoked());
        }
        let file = claims
            .file()
            .ok_or_else(|| invalid("the token is not for a file"))?;
        let id = file_id_of_path(req.uri.path()).unwrap_or_default();
        if !path_matches(id, &file.resource) {
            return Err(invalid("the token is not for this file"));
        }
        let app = file.app.as_deref().and_then(|a| self.discovery.app(a));
        // Office for iOS/Android does not sign its requests (wopi.md §8.4): a mobile token's
        // requests are checked only when they carry a proof.
        let unsigned_mobile = claims.mobile && !req.headers.contains_key("x-wopi-proof");
        match app {
            _ if unsigned_mobile => {}
            Some(app) => self.check_proof(req, app, &token).await?,
            None => self.check_proof_any_app(req, &token).await?,
        }
        Ok(Checked {
            app: app.map(|a| a.name.clone()),
            gateway: Some((token, claims, tokens.clone())),
            read_write: false,
            pass_through: None,
        })
    }

    /// The proof of a request whose token names no configured app: it verifies with one of the
    /// signing apps' keys, or it is unsigned while some configured app signs nothing (it may be
    /// that app's). Anything else is refused while any signing app enforces proofs.
    async fn check_proof_any_app(&self, req: &Parts, token: &str) -> Result<(), ApiError> {
        let signed = req.headers.contains_key("x-wopi-proof");
        let mut some_app_unsigned = false;
        let mut enforced = false;
        for app in self.discovery.apps() {
            let keys = match app.proof_keys {
                ProofMode::Off => None,
                _ => self.discovery.proof_keys(&app.name).await,
            };
            let Some(keys) = keys else {
                some_app_unsigned = true;
                continue;
            };
            enforced |= app.proof_keys == ProofMode::Enforce;
            if signed && self.verify(req, &keys, token).is_ok_and(|v| v.accepted()) {
                return Ok(());
            }
        }
        if !signed && some_app_unsigned {
            return Ok(());
        }
        crate::metrics::metrics()
            .proof_verdicts
            .with_label_values(&["none", if signed { "rejected" } else { "invalid" }])
            .inc();
        let failure = if signed {
            "the token names no configured office app and no app's key verifies the proof"
        } else {
            "the token names no configured office app and the request carries no proof"
        };
        if enforced {
            return Err(ApiError::new(
                ErrorCode::ProofInvalid,
                format!("WOPI proof rejected: {failure}"),
            ));
        }
        tracing::warn!(reason = failure, "WOPI proof failed (log-only)");
        Ok(())
    }

    async fn check_proof(&self, req: &Parts, app: &OfficeApp, token: &str) -> Result<(), ApiError> {
        if app.proof_keys == ProofMode::Off {
            return Ok(());
        }
        let Some(keys) = self.discovery.proof_keys(&app.name).await else {
            return Ok(()); // this app publishes no proof key
        };
        let outcome = self.verify(req, &keys, token);
        let outcome = match outcome {
            // A key mismatch may be a rotation we have not seen yet: refetch once, retry.
            Ok(Verdict::Rejected) if self.discovery.refetch_early(&app.name).await => {
                match self.discovery.proof_keys(&app.name).await {
                    Some(fresh) => self.verify(req, &fresh, token),
                    None => Ok(Verdict::Rejected),
                }
            }
            Ok(v) if v.suggests_refresh() => {
                let discovery = self.discovery.clone();
                let name = app.name.clone();
                tokio::spawn(async move { discovery.refetch_early(&name).await });
                Ok(v)
            }
            other => other,
        };
        let verdict = match &outcome {
            Ok(v) if v.accepted() => "accepted",
            Ok(_) => "rejected",
            Err(_) => "invalid",
        };
        crate::metrics::metrics()
            .proof_verdicts
            .with_label_values(&[app.name.as_str(), verdict])
            .inc();
        let failure = match outcome {
            Ok(v) if v.accepted() => return Ok(()),
            Ok(_) => "proof does not verify".to_owned(),
            Err(e) => e.to_string(),
        };
        match app.proof_keys {
            ProofMode::Enforce => Err(ApiError::new(
                ErrorCode::ProofInvalid,
                format!("WOPI proof rejected: {failure}"),
            )),
            _ => {
                tracing::warn!(app = %app.name, reason = %failure, "WOPI proof failed (log-only)");
                Ok(())
            }
        }
    }

    fn verify(
        &self,
        req: &Parts,
        keys: &ProofKeys,
        token: &str,
    ) -> Result<Verdict, proof::ProofError> {
        let ts = proof::check_timestamp(header(req, "x-wopi-timestamp"), SystemTime::now())?;
        let proof_header = header(req, "x-wopi-proof").ok_or(proof::ProofError::Missing)?;
        // The public URL the client used: external origin + raw request target (security.md W5).
        let target = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let url = format!("{}{target}", self.public_url);
        let signed = proof::expected_bytes(token.as_bytes(), &url, ts);
        Ok(proof::verify(
            keys,
            &signed,
            Some(proof_header),
            header(req, "x-wopi-proofold"),
        ))
    }
}
