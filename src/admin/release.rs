//! Releasing a lock whose holder is gone (a crashed office app, a revoked user): the gateway
//! sends the wopiserver an UNLOCK with the lock id it saw granted, under a fresh wopiserver
//! token of the holder (REVA checks that the lock's user unlocks it). In mint mode the gateway
//! mints the holder's REVA token itself; in authenticate mode it holds no credential of the
//! holder, and says so (the lock then needs the storage's own tools, or its 30 minutes).

use serde_json::{Value, json};

use super::{AdminApi, unavailable};
use crate::control::activity::Lock;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::exchange::ExchangeError;
use crate::ids::{Resource, decode_file_id, inode_of};
use crate::open::OpenAs;
use crate::wopi::ViewMode;
use crate::wopiserver::LockCall;

fn gone() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "the file is not locked any more")
}

/// A lock as the admin API shows it: without the holder's REVA claims.
pub(super) fn shown(l: &Lock) -> Value {
    let mut v = serde_json::to_value(l).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("holder_claim");
    }
    v
}

impl AdminApi {
    pub(super) async fn release(&self, file: &str, trace_id: &str) -> Result<Reply, ApiError> {
        decode_file_id(file).map_err(|_| super::bad("file: REVA's storage$space!opaque form"))?;
        let control = &self.open.backends.control;
        let lock = control
            .activity
            .lock_on(file)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, "the gateway saw no lock on this file")
            })?;
        let outcome = self.unlock_as_holder(&lock, trace_id).await;
        let label = match &outcome {
            Ok(_) => "released",
            Err(e) if e.code == ErrorCode::Conflict => "conflict",
            Err(_) => "failed",
        };
        crate::metrics::metrics()
            .control
            .lock_releases
            .with_label_values(&[label])
            .inc();
        tracing::info!(
            target: "wopigate::audit",
            action = "release_lock",
            file = %lock.file,
            holder = %lock.holder,
            app = %lock.app,
            instance = %lock.instance,
            outcome = label,
            "lock release"
        );
        // Released, or already gone on the wopiserver: either way not held any more.
        if outcome.is_ok()
            || outcome
                .as_ref()
                .is_err_and(|e| e.code == ErrorCode::NotFound)
        {
            control.activity.forget_lock(&lock.file).await;
        }
        outcome?;
        Ok(Reply::json(&json!({ "released": shown(&lock) })))
    }

    async fn unlock_as_holder(&self, lock: &Lock, trace_id: &str) -> Result<(), ApiError> {
        let backends = &self.open.backends;
        let reva_token = match backends.exchanger.for_user(&lock.holder_claim).await {
            Err(ExchangeError::NoCredential) => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "exchange.mode = \"authenticate\": the gateway holds no credential of the lock's holder",
                ));
            }
            other => other?,
        };
        let user = &lock.holder_claim;
        let userid = format!("{}@{}", user.id.opaque_id, user.id.idp);
        let id = decode_file_id(&lock.file)
            .map_err(|_| ApiError::new(ErrorCode::Internal, "a recorded lock's file id"))?;
        let opened = self
            .open
            .open_as(&OpenAs {
                reva_token: &reva_token,
                username: &user.display_name,
                userid: &userid,
                id,
                app_name: Some(lock.app.as_str()).filter(|a| !a.is_empty()),
                view_mode: Some(ViewMode::ReadWrite),
                trace_id,
                fallback_ext: None,
            })
            .await?;
        let resource = Resource::from(&opened.resource);
        let path_query = format!(
            "/wopi/files/{}?access_token={}",
            inode_of(&resource),
            url::form_urlencoded::byte_serialize(opened.access_token.expose().as_bytes())
                .collect::<String>()
        );
        let key = (resource.storage_id.as_str(), resource.opaque_id.as_str());
        match backends
            .wopiserver
            .lock_call(key, &path_query, LockCall::Unlock(&lock.lock_id))
            .await?
        {
            (200, _) => Ok(()),
            (409, None) => Err(gone()),
            (409, Some(current)) if current.is_empty() => Err(gone()),
            (409, current) => Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the file's lock is no longer the one the gateway saw (now: {:?})",
                    current.unwrap_or_default()
                ),
            )),
            (404, _) => Err(ApiError::not_found()),
            (status, _) => Err(crate::wopiserver::WopiserverError::Rejected(status).into()),
        }
    }
}
