//! The container writes Office for iOS/Android makes (wopi.md §5.4–§5.6) on top of REVA:
//! CreateChildFile (a zero-byte file, then edited and saved through the normal WOPI path),
//! CreateChildContainer, DeleteContainer and RenameContainer. Names follow the same rules as
//! PutRelativeFile ([`crate::wopi::names`], UTF-7 headers); REVA checks the user's rights.

use std::collections::HashSet;

use serde_json::json;

use super::{MobileRequest, MobileService, display_name, resource_of};
use crate::error::{ApiError, ErrorCode, Reply};
use crate::pb::cs3::storage::provider::v1beta1::ResourceInfo;
use crate::reva::RevaError;
use crate::reva::{by_id, child};
use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::wopi::operation::WopiOperation;
use crate::wopi::{names, utf7};
use crate::wopi_call::save_as::{MAX_NAME_TRIES, Target, not_permitted, target_of};

fn refusal(code: ErrorCode, message: &str, headers: Vec<(&'static str, String)>) -> Reply {
    Reply::refused(ApiError::new(code, message), headers)
}

/// The new child's name (a file's or a folder's), or the refusal with its WOPI headers.
fn child_name(file: bool, target: Target, taken: &HashSet<String>) -> Result<String, Reply> {
    let invalid_header = if file {
        "X-WOPI-InvalidFileNameError"
    } else {
        "X-WOPI-InvalidContainerNameError"
    };
    let free = |n: &str| names::unique(n, MAX_NAME_TRIES, |x| taken.contains(x));
    let default_stem = if file { "New document" } else { "New folder" };
    match target {
        Target::Suggested(s) => {
            let wanted = if file {
                names::suggested(&s, default_stem)
            } else {
                names::legalise(&s, default_stem)
            };
            free(&wanted).ok_or_else(|| refusal(ErrorCode::Conflict, "no free name", Vec::new()))
        }
        Target::Relative { name, .. } if !names::is_legal(&name) => Err(refusal(
            ErrorCode::BadRequest,
            "the name is not allowed",
            vec![(invalid_header, "the name is not allowed".into())],
        )),
        Target::Relative { name, overwrite } if taken.contains(&name) => {
            let proposal = free(&name)
                .map(|n| vec![("X-WOPI-ValidRelativeTarget", utf7::encode(&n))])
                .unwrap_or_default();
            Err(if file && overwrite {
                // Overwriting with an empty file would destroy the document: refused as "not
                // allowed" (wopi.md §5.5 permits 501).
                not_permitted("overwriting a file with an empty one is not allowed")
            } else {
                refusal(ErrorCode::Conflict, "the name is taken", proposal)
            })
        }
        Target::Relative { name, .. } => Ok(name),
    }
}

impl MobileService {
    pub(super) async fn container_write(
        &self,
        op: WopiOperation,
        req: &MobileRequest<'_>,
        c: &Claims,
        info: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Reply, ApiError> {
        match op {
            WopiOperation::CreateChildFile | WopiOperation::CreateChildContainer => {
                self.create_child(op == WopiOperation::CreateChildFile, req, c, info, reva)
                    .await
            }
            WopiOperation::DeleteContainer => self.delete_container(info, reva).await,
            _ => self.rename_container(req, info, reva).await,
        }
    }

    async fn create_child(
        &self,
        file: bool,
        req: &MobileRequest<'_>,
        c: &Claims,
        folder: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Reply, ApiError> {
        let target = match target_of(&req.head.headers) {
            Ok(t) => t,
            // Both headers: 501 (the validator checks exactly that); neither: 400.
            Err(_)
                if req.head.headers.contains_key("x-wopi-suggestedtarget")
                    && req.head.headers.contains_key("x-wopi-relativetarget") =>
            {
                return Ok(not_permitted("give one of the two name headers"));
            }
            Err(r) => return Ok(r),
        };
        let p = folder.permission_set.unwrap_or_default();
        if (file && !p.initiate_file_upload) || (!file && !p.create_container) {
            return Ok(not_permitted("no permission to create here"));
        }
        let parent = folder.id.clone().ok_or_else(ApiError::not_found)?;
        let taken = self.backends.reva.names_in(reva, &parent).await?;
        let name = match child_name(file, target, &taken) {
            Ok(name) => name,
            Err(refused) => return Ok(refused),
        };
        let created = if file {
            self.backends
                .reva
                .touch_file(reva, child(&parent, &name))
                .await
        } else {
            self.backends
                .reva
                .create_container(reva, child(&parent, &name))
                .await
        };
        match created {
            Ok(()) => {}
            Err(RevaError::PermissionDenied) => {
                return Ok(not_permitted("no permission to create here"));
            }
            Err(RevaError::AlreadyExists) => {
                return Ok(refusal(
                    ErrorCode::Conflict,
                    "the name is taken",
                    Vec::new(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let info = self
            .backends
            .reva
            .stat_ref(reva, child(&parent, &name))
            .await?;
        if !file {
            let r = resource_of(&info)?;
            return Ok(Reply::json(&json!({
                "ContainerPointer": {
                    "Name": display_name(&info),
                    "Url": self.container_url(c, &r)?,
                },
                "ContainerInfo": self.container_info(&info),
            })));
        }
        self.file_created(c, &info, &name).await
    }

    /// CreateChildFile's answer: the new file's name and URL, and the office app's URLs.
    async fn file_created(
        &self,
        c: &Claims,
        info: &ResourceInfo,
        name: &str,
    ) -> Result<Reply, ApiError> {
        let url = self.file_url(c, info).await?;
        let mut answer = json!({ "Name": name, "Url": url });
        let ext = crate::open::extension_of(name).unwrap_or_default();
        let app = self.settings.app.as_deref();
        if let Ok(choice) = self.backends.discovery.choose(&ext, app).await {
            let src = url.split('?').next().unwrap_or_default();
            let src: String = url::form_urlencoded::byte_serialize(src.as_bytes()).collect();
            let host = |u: &Option<String>| u.as_ref().map(|u| format!("{u}WOPISrc={src}"));
            if let Some(u) = host(&choice.urls.edit) {
                answer["HostEditUrl"] = json!(u);
            }
            if let Some(u) = host(&choice.urls.view) {
                answer["HostViewUrl"] = json!(u);
            }
            if let Some(u) = host(&choice.urls.editnew) {
                answer["HostEditNewUrl"] = json!(u);
            }
        }
        Ok(Reply::json(&answer))
    }

    /// 409 while it has children (wopi.md §5.6); the root is never deleted.
    async fn delete_container(
        &self,
        folder: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Reply, ApiError> {
        let p = folder.permission_set.unwrap_or_default();
        if !p.delete || folder.parent_id.is_none() {
            return Ok(not_permitted("no permission to delete this folder"));
        }
        let id = folder.id.clone().ok_or_else(ApiError::not_found)?;
        if !self
            .backends
            .reva
            .list_container(reva, id.clone())
            .await?
            .is_empty()
        {
            return Ok(refusal(
                ErrorCode::Conflict,
                "the folder is not empty",
                Vec::new(),
            ));
        }
        match self.backends.reva.delete(reva, by_id(&id)).await {
            Ok(()) => Ok(Reply::json(&json!({}))),
            Err(RevaError::PermissionDenied) => Ok(not_permitted("no permission")),
            Err(RevaError::Locked) => Ok(refusal(ErrorCode::Conflict, "locked", Vec::new())),
            Err(e) => Err(e.into()),
        }
    }

    /// `X-WOPI-RequestedName` (UTF-7): the folder keeps its id, gets the name.
    async fn rename_container(
        &self,
        req: &MobileRequest<'_>,
        folder: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Reply, ApiError> {
        let invalid = |why: &str| {
            refusal(
                ErrorCode::BadRequest,
                why,
                vec![("X-WOPI-InvalidContainerNameError", why.to_owned())],
            )
        };
        let Some(raw) = req.header("x-wopi-requestedname") else {
            return Ok(invalid("X-WOPI-RequestedName is required"));
        };
        let Ok(name) = utf7::decode(&raw) else {
            return Ok(invalid("the name is not UTF-7"));
        };
        if !names::is_legal(&name) {
            return Ok(invalid("the name is not allowed"));
        }
        let p = folder.permission_set.unwrap_or_default();
        let (Some(id), Some(parent)) = (folder.id.clone(), folder.parent_id.clone()) else {
            return Ok(not_permitted("the root folder cannot be renamed"));
        };
        if !p.r#move {
            return Ok(not_permitted("no permission to rename this folder"));
        }
        if name != names::of(folder)
            && self
                .backends
                .reva
                .names_in(reva, &parent)
                .await?
                .contains(&name)
        {
            return Ok(refusal(
                ErrorCode::Conflict,
                "the name is taken",
                Vec::new(),
            ));
        }
        let source = by_id(&id);
        match self
            .backends
            .reva
            .r#move(reva, source, child(&parent, &name))
            .await
        {
            Ok(()) => {
                // Open documents below it: their wopiserver tokens name the old path.
                if folder.path.starts_with('/') {
                    self.wrap
                        .forget_renamed(crate::tokens::remembered::Renamed::Folder {
                            path: folder.path.clone(),
                        });
                }
                Ok(Reply::json(&json!({ "Name": name })))
            }
            Err(RevaError::AlreadyExists) => Ok(refusal(
                ErrorCode::Conflict,
                "the name is taken",
                Vec::new(),
            )),
            Err(RevaError::PermissionDenied) => Ok(not_permitted("no permission")),
            Err(e) => Err(e.into()),
        }
    }
}
