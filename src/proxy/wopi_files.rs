//! Checks on proxied `/wopi/files/*` requests before anything reaches the wopiserver: one access
//! token, not expired (wopiserver deviation: it would answer 500), and a valid proof when the
//! token's office app publishes proof keys (wopi.md §10).

use std::sync::Arc;
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use pingora::http::RequestHeader;

use crate::config::{OfficeApp, ProofMode};
use crate::discovery::DiscoveryCache;
use crate::error::{ApiError, ErrorCode};
use crate::wopi::access_token;
use crate::wopi::proof::{self, ProofKeys, Verdict};

/// Settings and shared state the checks need.
pub struct WopiFilesGuard {
    pub discovery: Arc<DiscoveryCache>,
    pub public_url: String,
    pub reject_expired_tokens: bool,
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The raw (still percent-encoded) `access_token` query value; differing duplicates are refused
/// (security.md R7).
fn raw_access_token(query: &str) -> Result<Option<&str>, ApiError> {
    let mut found: Option<&str> = None;
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("access_token=") {
            match found {
                Some(prev) if prev != v => {
                    return Err(ApiError::new(
                        ErrorCode::BadRequest,
                        "more than one access_token",
                    ));
                }
                _ => found = Some(v),
            }
        }
    }
    Ok(found)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl WopiFilesGuard {
    /// Checks the request; on success returns the configured office app the token belongs to
    /// (`None` when the token names no configured app), for metrics and the access log.
    pub async fn check(&self, req: &RequestHeader) -> Result<Option<String>, ApiError> {
        let invalid = |m: &str| ApiError::new(ErrorCode::InvalidToken, m);
        let raw = raw_access_token(req.uri.query().unwrap_or_default())?;
        // The token as issued: the query parameter after percent-decoding (wopi.md §10.2).
        let token = match raw {
            Some(raw) => percent_decode_str(&raw.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned(),
            None => return Err(invalid("access_token missing")),
        };
        let claims = access_token::read(&token)
            .ok_or_else(|| invalid("access token is not a WOPI token"))?;
        if self.reject_expired_tokens && access_token::effective_exp(&claims) <= now_secs() {
            return Err(invalid("access token expired"));
        }
        match self.discovery.app(&claims.appname) {
            Some(app) => {
                self.check_proof(req, app, &token).await?;
                Ok(Some(app.name.clone()))
            }
            None => Ok(None),
        }
    }

    async fn check_proof(
        &self,
        req: &RequestHeader,
        app: &OfficeApp,
        token: &str,
    ) -> Result<(), ApiError> {
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
        req: &RequestHeader,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_duplicates() {
        assert_eq!(
            raw_access_token("a=1&access_token=x&b=2").unwrap(),
            Some("x")
        );
        assert_eq!(
            raw_access_token("access_token=x&access_token=x").unwrap(),
            Some("x")
        );
        assert!(raw_access_token("access_token=x&access_token=y").is_err());
        assert_eq!(raw_access_token("access_token_ttl=5").unwrap(), None);
    }
}
