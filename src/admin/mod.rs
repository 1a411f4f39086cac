//! The admin API (on the admin listener only): the sessions and locks the gateway sees,
//! revocations, and the release of a lock whose holder is gone. Authenticated by a bearer read
//! from a file (`[admin] token_file`), compared in constant time; without it the API does not
//! exist. Every change is written to the audit log (`wopigate::audit`).

mod release;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::control::activity::Filter;
use crate::control::revocation::Scope;
use crate::control::store::Unavailable;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::open::OpenService;
use crate::secret::Secret;
use crate::tokens::now;

/// Longest scope value accepted (a `sub`, a `sid`, a file id).
const MAX_VALUE: usize = 1024;
/// How far ahead of this clock a "before" may be (another replica's clock).
const FUTURE_SKEW: u64 = 5;

pub struct AdminApi {
    /// The open flow (and through it the backends and the control point): a release opens
    /// the file as its lock's holder.
    pub open: Arc<OpenService>,
    /// SHA-256 of the bearer: compared in constant time whatever the presented length.
    bearer: [u8; 32],
}

/// One admin request, as the HTTP edge read it.
pub struct AdminRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
    pub trace_id: &'a str,
}

/// `POST /admin/revocations`: exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    user: Option<String>,
    sid: Option<String>,
    file: Option<String>,
    before: Option<u64>,
}

/// `POST /admin/locks/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    file: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn unavailable(e: Unavailable) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, e.to_string())
}

impl AdminApi {
    pub fn new(open: Arc<OpenService>, bearer: &Secret) -> Self {
        Self {
            open,
            bearer: Sha256::digest(bearer.expose().as_bytes()).into(),
        }
    }

    fn authorised(&self, authorization: Option<&str>) -> bool {
        let Some(presented) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        digest.ct_eq(&self.bearer).into()
    }

    /// Answers one admin request.
    pub async fn serve(&self, req: &AdminRequest<'_>) -> Reply {
        if !self.authorised(req.authorization) {
            return Reply::refuse(ErrorCode::InvalidToken, "admin bearer missing or wrong")
                .with_header("WWW-Authenticate", "Bearer realm=\"wopigate-admin\"");
        }
        match self.route(req).await {
            Ok(r) => r,
            Err(e) => e.into(),
        }
    }

    async fn route(&self, req: &AdminRequest<'_>) -> Result<Reply, ApiError> {
        use http::Method;
        let activity = &self.open.backends.control.activity;
        match (req.method, req.path) {
            (&Method::GET, "/admin/sessions") => {
                let sessions = activity.sessions(&filter(req.query)?).await;
                Ok(Reply::json(
                    &json!({"sessions": sessions.map_err(unavailable)?}),
                ))
            }
            (&Method::GET, "/admin/locks") => {
                let locks = activity.locks(&filter(req.query)?).await;
                let locks: Vec<_> = locks
                    .map_err(unavailable)?
                    .iter()
                    .map(release::shown)
                    .collect();
                Ok(Reply::json(&json!({ "locks": locks })))
            }
            (&Method::GET, "/admin/revocations") => Ok(Reply::json(&json!({
                "revocations": self.open.backends.control.revocations.list(now()),
            }))),
            (&Method::POST, "/admin/revocations") => self.revoke(req.body).await,
            (&Method::POST, "/admin/locks/release") => {
                let r: Release = serde_json::from_slice(req.body)
                    .map_err(|e| bad(format!("expected {{\"file\": id}}: {e}")))?;
                self.release(&r.file, req.trace_id).await
            }
            (_, "/admin/sessions" | "/admin/locks" | "/admin/revocations")
            | (_, "/admin/locks/release") => Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed",
            )),
            _ => Err(ApiError::no_such_endpoint()),
        }
    }

    async fn revoke(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let r: Revoke = serde_json::from_slice(body).map_err(|e| {
            bad(format!(
                "expected one of {{\"user\"}}, {{\"sid\"}}, {{\"file\"}}, {{\"before\"}}: {e}"
            ))
        })?;
        let (scope, before) = scope_of(r)?;
        let entry = self
            .open
            .backends
            .control
            .revoke(scope, before, "admin")
            .await
            .map_err(|e| {
                tracing::warn!(target: "wopigate::audit", action = "revoke", outcome = "store unreachable", "revocation refused");
                unavailable(e)
            })?;
        tracing::info!(
            target: "wopigate::audit",
            action = "revoke",
            entry = %serde_json::to_string(&entry).unwrap_or_default(),
            "revoked"
        );
        let mut reply = Reply::json(&json!({ "revocation": entry }));
        reply.status = 201;
        Ok(reply)
    }
}

/// The one scope a revocation request names, checked.
fn scope_of(r: Revoke) -> Result<(Scope, Option<u64>), ApiError> {
    let value = |v: String, what: &str| {
        if v.is_empty() || v.len() > MAX_VALUE || v.chars().any(char::is_control) {
            Err(bad(format!(
                "{what}: 1 to {MAX_VALUE} characters, no control characters"
            )))
        } else {
            Ok(v)
        }
    };
    Ok(match (r.user, r.sid, r.file, r.before) {
        (Some(u), None, None, None) => (Scope::User(value(u, "user")?), None),
        (None, Some(s), None, None) => (Scope::Sid(value(s, "sid")?), None),
        (None, None, Some(f), None) => {
            crate::ids::decode_file_id(&f)
                .map_err(|_| bad("file: REVA's storage$space!opaque form"))?;
            (Scope::File(value(f, "file")?), None)
        }
        (None, None, None, Some(t)) if t > now() + FUTURE_SKEW => {
            return Err(bad(
                "before: a moment in the future would refuse every login until then",
            ));
        }
        (None, None, None, Some(t)) => (Scope::Everything, Some(t)),
        _ => {
            return Err(bad(
                "name exactly one of \"user\", \"sid\", \"file\", \"before\"",
            ));
        }
    })
}

fn filter(query: Option<&str>) -> Result<Filter, ApiError> {
    let q = query.unwrap_or_default();
    let mut f = Filter::default();
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        let slot = match &*k {
            "user" => &mut f.user,
            "file" => &mut f.file,
            "app" => &mut f.app,
            "instance" => &mut f.instance,
            other => return Err(bad(format!("unknown filter {other:?}"))),
        };
        *slot = Some(v.into_owned());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke(json: &str) -> Result<(Scope, Option<u64>), ApiError> {
        scope_of(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_revocation_names_exactly_one_sound_scope() {
        assert_eq!(
            revoke(r#"{"user":"alice"}"#).unwrap(),
            (Scope::User("alice".into()), None)
        );
        assert_eq!(
            revoke(r#"{"file":"st$sp!f1"}"#).unwrap().0,
            Scope::File("st$sp!f1".into())
        );
        assert_eq!(
            revoke(r#"{"before":1000}"#).unwrap(),
            (Scope::Everything, Some(1000))
        );
        for refused in [
            r#"{}"#,
            r#"{"user":"a","sid":"b"}"#,
            r#"{"user":""}"#,
            r#"{"file":"no-storage"}"#,
            r#"{"before":99999999999}"#,
        ] {
            assert_eq!(
                revoke(refused).unwrap_err().code,
                ErrorCode::BadRequest,
                "{refused}"
            );
        }
        assert!(serde_json::from_str::<Revoke>(r#"{"users":"a"}"#).is_err());
    }

    #[test]
    fn filters_are_the_four_named_ones() {
        let f = filter(Some("user=alice&app=Collabora")).unwrap();
        assert_eq!(
            (f.user.as_deref(), f.app.as_deref(), f.file),
            (Some("alice"), Some("Collabora"), None)
        );
        assert!(filter(Some("token=x")).is_err());
    }
}
