//! PutRelativeFile served by the gateway (wopi.md §4.4): Save As, "save a copy" and the
//! conversion of legacy formats. The wopiserver v11.5.0 refuses it to regular users
//! (cs3-wopiserver.md §9.1), so it is never forwarded: the gateway picks the name in the
//! source's folder, creates the file in REVA with the user's own permissions, opens it with
//! `openinapp`, and the HTTP edge streams the body into it through the wopiserver's own
//! PutFile (an unlocked write to an empty file; an overwrite under a lock the gateway takes).
//! The answer names the new file with a gateway token, never a wopiserver or REVA token.

use serde_json::json;

mod created;
mod request;

pub use created::Created;

use request::refuse;
pub use request::{Refusal, Target, check_size, target_of};

use super::{OpenAs, OpenService};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{Resource, path_id_of};
use crate::pb::cs3::storage::provider::v1beta1::{Reference, ResourceId, ResourceType};
use crate::reva::RevaError;
use crate::secret::Secret;
use crate::tokens::gateway::{Claims, Kind};
use crate::tokens::reva::{RevaToken, UserClaim, unverified_claims, unverified_exp};
use crate::wopi::{names, utf7};
use crate::wopiserver::ViewMode;

/// Most numbered variants tried for a free name.
const MAX_NAME_TRIES: usize = 1000;

/// Who asks, from the token the request carried.
pub struct Caller {
    pub user: UserClaim,
    pub reva: RevaToken,
    pub source: Resource,
    /// The office app the source was opened with.
    pub app: Option<String>,
    /// The token may write (`VIEW_MODE_READ_WRITE`).
    pub writable: bool,
    /// Expiry of the token asked with: the new file's token lives no longer.
    pub exp: u64,
}

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

impl OpenService {
    /// Who holds a wopiserver token. The gateway cannot check the token's signature (the
    /// wopiserver's key stays with it), so its claims decide nothing until the wopiserver has
    /// answered CheckFileInfo for exactly that token: then they are the ones it signed, and the
    /// holder may write only when it says `UserCanWrite`. `path_query` is the request's own path
    /// and query (the token is in it; PutRelativeFile's path is the file's, as CheckFileInfo's).
    pub async fn wopiserver_caller(
        &self,
        token: &str,
        path_query: &str,
    ) -> Result<Caller, ApiError> {
        let not_wopi = || ApiError::new(ErrorCode::InvalidToken, "not a WOPI token");
        let c = crate::tokens::wopiserver::read(token).ok_or_else(not_wopi)?;
        let (storage_id, space_id) = c.endpoint.split_once('$').unwrap_or((&c.endpoint, ""));
        let info = match self
            .wopiserver
            .check_file_info((storage_id, &c.fileid), path_query)
            .await?
        {
            (200, Some(info)) => info,
            (401, _) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidToken,
                    "the wopiserver does not accept the token",
                ));
            }
            (404, _) => return Err(ApiError::not_found()),
            (status, _) => return Err(crate::wopiserver::WopiserverError::Rejected(status).into()),
        };
        let reva = unverified_claims(&c.userid).ok_or_else(not_wopi)?;
        if storage_id.is_empty() || c.fileid.is_empty() {
            return Err(not_wopi());
        }
        let expiry_ms = info["AccessTokenExpiry"].as_u64();
        Ok(Caller {
            user: reva.user,
            reva: RevaToken {
                token: Secret::new(c.userid.as_str()),
                expires_at: reva.exp,
            },
            source: Resource {
                storage_id: storage_id.to_owned(),
                space_id: space_id.to_owned(),
                opaque_id: c.fileid.clone(),
            },
            app: Some(c.appname.clone()).filter(|a| !a.is_empty()),
            writable: info["UserCanWrite"].as_bool() == Some(true)
                && c.viewmode == ViewMode::ReadWrite.as_str(),
            exp: expiry_ms.map_or(c.exp, |ms| c.exp.min(ms / 1000)),
        })
    }
}

/// A resource by its id.
pub fn by_id(id: &ResourceId) -> Reference {
    Reference {
        resource_id: Some(id.clone()),
        path: String::new(),
    }
}

/// The entry `name` in the folder `parent`.
pub fn child(parent: &ResourceId, name: &str) -> Reference {
    Reference {
        resource_id: Some(parent.clone()),
        path: format!("./{name}"),
    }
}

/// The folder writes are refused with 501 (what WOPI lists for "not permitted for the user").
fn not_permitted(what: &str) -> Refusal {
    refuse(ErrorCode::NotImplemented, what)
}

impl OpenService {
    /// The names in a folder (a new one must differ from all of them).
    pub async fn names_in(
        &self,
        reva: &Secret,
        folder: &ResourceId,
    ) -> Result<std::collections::HashSet<String>, ApiError> {
        Ok(self
            .reva
            .list_container(reva, folder.clone())
            .await?
            .iter()
            .map(|i| names::of(i).to_owned())
            .collect())
    }

    /// Picks the name, creates (or takes over) the target, opens it with `openinapp` and says
    /// where the body goes.
    pub async fn prepare_save_as(
        &self,
        caller: &Caller,
        target: Target,
        public_url: &str,
        trace_id: &str,
    ) -> Result<Prepared, Refusal> {
        let wrap = self
            .wrap
            .as_ref()
            .ok_or_else(|| not_permitted("gateway tokens are off"))?;
        if !caller.writable {
            return Err(not_permitted("a read-only token cannot create files"));
        }
        let reva = &caller.reva.token;
        let source_id = ResourceId::from(&caller.source);
        let source = self
            .reva
            .stat(reva, source_id.clone())
            .await
            .map_err(ApiError::from)?;
        if source.r#type() != ResourceType::File {
            return Err(ApiError::not_found().into());
        }
        let parent_id = source
            .parent_id
            .clone()
            .ok_or_else(|| not_permitted("the file has no folder"))?;
        // A file shared without its folder: nothing can be created next to it.
        let folder = self
            .reva
            .stat(reva, parent_id.clone())
            .await
            .map_err(|e| match e {
                RevaError::PermissionDenied | RevaError::NotFound => {
                    not_permitted("no permission to create files in this folder")
                }
                other => ApiError::from(other).into(),
            })?;
        if !folder
            .permission_set
            .as_ref()
            .is_some_and(|p| p.initiate_file_upload)
        {
            return Err(not_permitted(
                "no permission to create files in this folder",
            ));
        }
        let taken = self.names_in(reva, &parent_id).await?;
        let source_name = names::of(&source);
        let free = |name: &str| names::unique(name, MAX_NAME_TRIES, |n| taken.contains(n));
        let valid_header = |name: &str| {
            let proposal = free(&names::legalise(name, "New document"));
            proposal
                .map(|p| vec![("X-WOPI-ValidRelativeTarget", utf7::encode(&p))])
                .unwrap_or_default()
        };
        let (name, overwrite) = match target {
            Target::Suggested(s) => {
                let name = free(&names::suggested(&s, source_name))
                    .ok_or_else(|| refuse(ErrorCode::Conflict, "no free name"))?;
                (name, false)
            }
            Target::Relative { name, .. } if !names::is_legal(&name) => {
                return Err(Refusal {
                    error: ApiError::new(ErrorCode::BadRequest, "the name is not allowed"),
                    headers: valid_header(&name),
                });
            }
            Target::Relative { name, overwrite } if taken.contains(&name) => {
                if !overwrite {
                    return Err(Refusal {
                        error: ApiError::new(ErrorCode::Conflict, "the name is taken"),
                        headers: valid_header(&name),
                    });
                }
                (name, true)
            }
            Target::Relative { name, .. } => (name, false),
        };

        // From here on, a file this request created is removed on any early return.
        let mut created = None;
        if !overwrite {
            self.reva
                .touch_file(reva, child(&parent_id, &name))
                .await
                .map_err(|e| match e {
                    RevaError::PermissionDenied => {
                        not_permitted("no permission to create files in this folder")
                    }
                    RevaError::AlreadyExists => refuse(ErrorCode::Conflict, "the name is taken"),
                    other => ApiError::from(other).into(),
                })?;
            created = Some(Created::new(
                self.reva.clone(),
                reva.clone(),
                child(&parent_id, &name),
            ));
        }
        let info = self
            .reva
            .stat_ref(reva, child(&parent_id, &name))
            .await
            .map_err(ApiError::from)?;
        let id = info
            .id
            .clone()
            .ok_or_else(|| refuse(ErrorCode::UpstreamError, "REVA named no id"))?;
        let resource = Resource::from(&id);
        if let Some(c) = created.as_mut() {
            c.identified(&id);
        }
        if overwrite
            && !info
                .permission_set
                .as_ref()
                .is_some_and(|p| p.initiate_file_upload)
        {
            return Err(not_permitted("no permission to overwrite this file"));
        }

        let userid = format!("{}@{}", caller.user.id.opaque_id, caller.user.id.idp);
        let opened = match self
            .open_as(&OpenAs {
                reva_token: &caller.reva,
                username: &caller.user.display_name,
                userid: &userid,
                id: id.clone(),
                app_name: caller.app.as_deref(),
                view_mode: Some(ViewMode::ReadWrite),
                trace_id,
                fallback_ext: super::extension_of(source_name).as_deref(),
            })
            .await
        {
            Ok(o) => o,
            Err(e) => {
                if let Some(c) = created {
                    c.remove().await;
                }
                return Err(e.into());
            }
        };
        let src_path = wopisrc_path(&opened.app_url)
            .unwrap_or_else(|| format!("/wopi/files/{}", crate::ids::inode_of(&resource)));
        let mut token_q = String::new();
        token_q.extend(url::form_urlencoded::byte_serialize(
            opened.access_token.expose().as_bytes(),
        ));
        let upstream_target = format!("{src_path}/contents?access_token={token_q}");

        // Overwriting: the file must not be locked by someone; the gateway locks it for the
        // write and releases it after.
        let mut lock = None;
        if overwrite {
            let probe = format!("{src_path}?access_token={token_q}");
            let key = (resource.storage_id.as_str(), resource.opaque_id.as_str());
            match self
                .wopiserver
                .file_op(key, &probe, "GET_LOCK", "")
                .await
                .map_err(ApiError::from)?
            {
                (_, Some(current)) if !current.is_empty() => {
                    return Err(Refusal {
                        error: ApiError::new(ErrorCode::Conflict, "the target is locked"),
                        headers: vec![("X-WOPI-Lock", current)],
                    });
                }
                _ => {}
            }
            let id = format!("wopigate-save-as-{}", uuid::Uuid::new_v4());
            let (status, current) = self
                .wopiserver
                .file_op(key, &probe, "LOCK", &id)
                .await
                .map_err(ApiError::from)?;
            if status != 200 {
                return Err(Refusal {
                    error: ApiError::new(ErrorCode::Conflict, "the target is locked"),
                    headers: vec![("X-WOPI-Lock", current.unwrap_or_default())],
                });
            }
            lock = Some(id);
        }

        let exp = caller.exp.min(crate::tokens::now() + wrap.ttl.as_secs());
        let claims = Claims {
            kind: Kind::File,
            user: caller.user.clone(),
            resource: Some(resource.clone()),
            app: Some(opened.app_name.clone()),
            view_mode: Some(opened.view_mode.as_str().to_owned()),
            mobile: false,
            exp,
        };
        let token = wrap.issue(&claims);
        wrap.remember(
            &token,
            opened.access_token.clone(),
            crate::tokens::remembered::upstream_until(
                unverified_exp(opened.access_token.expose()).unwrap_or(0),
                caller.reva.expires_at,
                exp,
            ),
        )
        .await;
        let wopi_src = format!("{public_url}/wopi/files/{}", path_id_of(&resource));
        let mut answer = json!({
            "Name": name,
            "Url": format!("{wopi_src}?access_token={token}"),
        });
        let ext = super::extension_of(&name).unwrap_or_default();
        if let Ok(choice) = self.discovery.choose(&ext, Some(&opened.app_name)).await {
            let src: String = url::form_urlencoded::byte_serialize(wopi_src.as_bytes()).collect();
            let host = |u: &Option<String>| u.as_ref().map(|u| format!("{u}WOPISrc={src}"));
            if let Some(u) = host(&choice.urls.edit) {
                answer["HostEditUrl"] = json!(u);
            }
            if let Some(u) = host(&choice.urls.view).or_else(|| host(&choice.urls.edit)) {
                answer["HostViewUrl"] = json!(u);
            }
        }
        Ok(Prepared {
            name,
            upstream_target,
            lock,
            created,
            resource,
            answer: serde_json::to_vec(&answer).unwrap_or_default(),
        })
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
            let _ = self.wopiserver.file_op(key, &probe, "UNLOCK", lock).await;
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
