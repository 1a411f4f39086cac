//! PutRelativeFile served by the gateway (wopi.md §4.4): Save As, "save a copy" and the
//! conversion of legacy formats. The wopiserver v11.5.0 refuses it to regular users
//! (cs3-wopiserver.md §9.1), so it is never forwarded: the gateway picks the name in the
//! source's folder, creates the file in REVA with the user's own permissions, opens it with
//! `openinapp`, and the HTTP edge streams the body into it through the wopiserver's own
//! PutFile (an unlocked write to an empty file; an overwrite under a lock the gateway takes).
//! The answer names the new file with a gateway token, never a wopiserver or REVA token.
//!
//! The steps, in order: [`GatewayTokens::folder_of`] (the source and the folder it may write
//! in), [`choose_name`], [`GatewayTokens::create_target`] (behind an undo guard, [`Created`]),
//! [`GatewayTokens::open_target`], [`GatewayTokens::lock_for_overwrite`],
//! [`GatewayTokens::answer`]; after the body, [`GatewayTokens::finish_save_as`].

mod caller;
mod created;
mod request;

use std::collections::HashSet;

use serde_json::json;

pub use caller::Caller;
pub use created::Created;
pub use request::{Target, check_size, target_of};

use super::GatewayTokens;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::ids::{Resource, path_id_of};
use crate::open::{OpenAs, OpenResult, extension_of};
use crate::pb::cs3::storage::provider::v1beta1::{ResourceId, ResourceInfo, ResourceType};
use crate::reva::{RevaError, by_id, child};
use crate::tokens::gateway::{Claims, FileGrant, Grant};
use crate::wopi::{ViewMode, names, utf7};
use crate::wopiserver::LockCall;

/// Most numbered variants tried for a free name.
pub const MAX_NAME_TRIES: usize = 1000;

/// A file made ready to receive the body.
#[derive(Debug)]
pub struct Prepared {
    pub name: String,
    /// Path and query of the wopiserver's PutFile for the new file (its token inside).
    pub upstream_target: String,
    /// The lock taken on an overwritten file, sent with the PutFile and released after.
    pub lock: Option<String>,
    /// The file this request created: removed again unless the body is stored.
    pub created: Option<Created>,
    /// The target file (new or overwritten).
    pub resource: Resource,
    /// The answer once the body is stored: `Name`, `Url`, `HostEditUrl`, `HostViewUrl`.
    pub answer: Vec<u8>,
}

/// Not permitted for this user: 501, as WOPI lists it for Save As and the folder writes.
pub fn not_permitted(what: &str) -> Reply {
    Reply::refuse(ErrorCode::NotImplemented, what)
}

/// The name the body is stored under, and whether it overwrites a file of that name.
pub fn choose_name(
    target: Target,
    taken: &HashSet<String>,
    source_name: &str,
) -> Result<(String, bool), Reply> {
    let free = |name: &str| names::unique(name, MAX_NAME_TRIES, |n| taken.contains(n));
    let refused = |code: ErrorCode, message: &str, name: &str| {
        Reply::refused(
            ApiError::new(code, message),
            free(&names::legalise(name, "New document"))
                .map(|p| vec![("X-WOPI-ValidRelativeTarget", utf7::encode(&p))])
                .unwrap_or_default(),
        )
    };
    match target {
        Target::Suggested(s) => free(&names::suggested(&s, source_name))
            .map(|name| (name, false))
            .ok_or_else(|| Reply::refuse(ErrorCode::Conflict, "no free name")),
        Target::Relative { name, .. } if !names::is_legal(&name) => Err(refused(
            ErrorCode::BadRequest,
            "the name is not allowed",
            &name,
        )),
        Target::Relative { name, overwrite } if taken.contains(&name) => match overwrite {
            true => Ok((name, true)),
            false => Err(refused(ErrorCode::Conflict, "the name is taken", &name)),
        },
        Target::Relative { name, .. } => Ok((name, false)),
    }
}

fn can_upload(info: &ResourceInfo) -> bool {
    info.permission_set
        .as_ref()
        .is_some_and(|p| p.initiate_file_upload)
}

impl GatewayTokens {
    /// Picks the name, creates (or takes over) the target, opens it with `openinapp` and says
    /// where the body goes.
    pub async fn prepare_save_as(
        &self,
        caller: &Caller,
        target: Target,
        public_url: &str,
        trace_id: &str,
    ) -> Result<Prepared, Reply> {
        if !caller.writable {
            return Err(not_permitted("a read-only token cannot create files"));
        }
        let (source, folder) = self.folder_of(caller).await?;
        let taken = self
            .open
            .backends
            .reva
            .names_in(&caller.reva.token, &folder)
            .await?;
        let source_name = names::of(&source);
        let (name, overwrite) = choose_name(target, &taken, source_name)?;
        // From here on, a file this request created is removed on any early return.
        let (id, created) = self
            .create_target(caller, &folder, &name, overwrite)
            .await?;
        let opened = match self.open_target(caller, &id, source_name, trace_id).await {
            Ok(opened) => opened,
            Err(e) => {
                // Removed before the answer, not behind it: the user may retry at once.
                if let Some(c) = created {
                    c.remove().await;
                }
                return Err(e);
            }
        };
        let resource = Resource::from(&id);
        let src_path = wopisrc_path(&opened.app_url)
            .unwrap_or_else(|| format!("/wopi/files/{}", crate::ids::inode_of(&resource)));
        let token_q: String =
            url::form_urlencoded::byte_serialize(opened.access_token.expose().as_bytes()).collect();
        let lock = match overwrite {
            true => Some(
                self.lock_for_overwrite(&resource, &format!("{src_path}?access_token={token_q}"))
                    .await?,
            ),
            false => None,
        };
        let answer = self
            .answer(caller, &opened, &name, &resource, public_url)
            .await;
        Ok(Prepared {
            name,
            upstream_target: format!("{src_path}/contents?access_token={token_q}"),
            lock,
            created,
            resource,
            answer,
        })
    }

    /// The source (a file) and the folder it is in, where the user may create files; a file
    /// shared without its folder has nothing next to it to create.
    async fn folder_of(&self, caller: &Caller) -> Result<(ResourceInfo, ResourceId), Reply> {
        let reva = &caller.reva.token;
        let source = self
            .open
            .backends
            .reva
            .stat(reva, ResourceId::from(&caller.source))
            .await?;
        if source.r#type() != ResourceType::File {
            return Err(ApiError::not_found().into());
        }
        let parent_id = source
            .parent_id
            .clone()
            .ok_or_else(|| not_permitted("the file has no folder"))?;
        let no_permission = || not_permitted("no permission to create files in this folder");
        let folder = self
            .open
            .backends
            .reva
            .stat(reva, parent_id.clone())
            .await
            .map_err(|e| match e {
                RevaError::PermissionDenied | RevaError::NotFound => no_permission(),
                other => other.into(),
            })?;
        if !can_upload(&folder) {
            return Err(no_permission());
        }
        Ok((source, parent_id))
    }

    /// The target's id: a new empty file (with its undo guard), or the file it overwrites.
    async fn create_target(
        &self,
        caller: &Caller,
        folder: &ResourceId,
        name: &str,
        overwrite: bool,
    ) -> Result<(ResourceId, Option<Created>), Reply> {
        let (reva_client, reva) = (&self.open.backends.reva, &caller.reva.token);
        let mut created = None;
        if !overwrite {
            reva_client
                .touch_file(reva, child(folder, name))
                .await
                .map_err(|e| match e {
                    RevaError::PermissionDenied => {
                        not_permitted("no permission to create files in this folder")
                    }
                    RevaError::AlreadyExists => {
                        Reply::refuse(ErrorCode::Conflict, "the name is taken")
                    }
                    other => other.into(),
                })?;
            created = Some(Created::new(
                reva_client.clone(),
                reva.clone(),
                child(folder, name),
            ));
        }
        let info = reva_client.stat_ref(reva, child(folder, name)).await?;
        let id = info
            .id
            .clone()
            .ok_or_else(|| Reply::refuse(ErrorCode::UpstreamError, "REVA named no id"))?;
        if let Some(c) = created.as_mut() {
            c.identified(&id);
        }
        if overwrite && !can_upload(&info) {
            return Err(not_permitted("no permission to overwrite this file"));
        }
        Ok((id, created))
    }

    /// `openinapp` of the target, read-write, for the source's app (or, when that app does not
    /// open the target's type, with the source's app URLs).
    async fn open_target(
        &self,
        caller: &Caller,
        id: &ResourceId,
        source_name: &str,
        trace_id: &str,
    ) -> Result<OpenResult, Reply> {
        let userid = format!("{}@{}", caller.user.id.opaque_id, caller.user.id.idp);
        Ok(self
            .open
            .open_as(&OpenAs {
                reva_token: &caller.reva,
                username: &caller.user.display_name,
                userid: &userid,
                id: id.clone(),
                app_name: caller.app.as_deref(),
                view_mode: Some(ViewMode::ReadWrite),
                trace_id,
                fallback_ext: extension_of(source_name).as_deref(),
            })
            .await?)
    }

    /// Overwriting: the file must not be locked by someone; the gateway locks it for the write
    /// (released after, [`Self::finish_save_as`]). `probe` is the file's path and query with
    /// the wopiserver token.
    async fn lock_for_overwrite(&self, resource: &Resource, probe: &str) -> Result<String, Reply> {
        let wopiserver = &self.open.backends.wopiserver;
        let key = (resource.storage_id.as_str(), resource.opaque_id.as_str());
        let locked = |current: String| {
            Reply::refuse(ErrorCode::Conflict, "the target is locked")
                .with_header("X-WOPI-Lock", current)
        };
        if let (_, Some(current)) = wopiserver.lock_call(key, probe, LockCall::GetLock).await?
            && !current.is_empty()
        {
            return Err(locked(current));
        }
        let id = format!("wopigate-save-as-{}", uuid::Uuid::new_v4());
        match wopiserver
            .lock_call(key, probe, LockCall::Lock(&id))
            .await?
        {
            (200, _) => Ok(id),
            (_, current) => Err(locked(current.unwrap_or_default())),
        }
    }

    /// The answer once the body is stored: the new file's name, its WOPI URL with a gateway
    /// token of its own (living no longer than the caller's), and the office app's URLs.
    async fn answer(
        &self,
        caller: &Caller,
        opened: &OpenResult,
        name: &str,
        resource: &Resource,
        public_url: &str,
    ) -> Vec<u8> {
        let claims = Claims {
            grant: Grant::File(FileGrant {
                resource: resource.clone(),
                app: Some(opened.app_name.clone()),
                view_mode: opened.view_mode,
            }),
            user: caller.user.clone(),
            mobile: false,
            login: caller.login.clone(),
            exp: caller
                .exp
                .min(crate::tokens::now() + self.wrap.ttl.as_secs()),
        };
        let token = self
            .wrap
            .issue_remembering(&claims, &opened.access_token, caller.reva.expires_at)
            .await;
        let wopi_src = format!("{public_url}/wopi/files/{}", path_id_of(resource));
        let mut answer = json!({
            "Name": name,
            "Url": format!("{wopi_src}?access_token={token}"),
        });
        let ext = extension_of(name).unwrap_or_default();
        let discovery = &self.open.backends.discovery;
        if let Ok(choice) = discovery.choose(&ext, Some(&opened.app_name)).await {
            let src: String = url::form_urlencoded::byte_serialize(wopi_src.as_bytes()).collect();
            let host = |u: &Option<String>| u.as_ref().map(|u| format!("{u}WOPISrc={src}"));
            if let Some(u) = host(&choice.urls.edit) {
                answer["HostEditUrl"] = json!(u);
            }
            if let Some(u) = host(&choice.urls.view).or_else(|| host(&choice.urls.edit)) {
                answer["HostViewUrl"] = json!(u);
            }
        }
        serde_json::to_vec(&answer).unwrap_or_default()
    }

    /// After the request: a file this request created is removed unless the body was stored;
    /// a lock it took is released.
    pub async fn finish_save_as(&self, p: &mut Prepared, stored: bool) {
        if let Some(lock) = &p.lock {
            let probe = p.upstream_target.replacen("/contents?", "?", 1);
            let key = (
                p.resource.storage_id.as_str(),
                p.resource.opaque_id.as_str(),
            );
            let _ = self
                .open
                .backends
                .wopiserver
                .lock_call(key, &probe, LockCall::Unlock(lock))
                .await;
        }
        match p.created.take() {
            Some(c) if stored => c.keep(),
            Some(c) => c.remove().await,
            None => {}
        }
    }
}

/// The path of the `WOPISrc` inside an app URL.
fn wopisrc_path(app_url: &str) -> Option<String> {
    let url = url::Url::parse(app_url).ok()?;
    let src = url
        .query_pairs()
        .find(|(k, _)| k.eq_ignore_ascii_case("WOPISrc"))?
        .1
        .into_owned();
    Some(url::Url::parse(&src).ok()?.path().to_owned())
}
