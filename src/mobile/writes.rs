//! The container writes Office for iOS/Android makes (wopi.md §5.4–§5.6) on top of REVA:
//! CreateChildFile (a zero-byte file, then edited and saved through the normal WOPI path),
//! CreateChildContainer, DeleteContainer and RenameContainer. Names follow the same rules as
//! PutRelativeFile ([`crate::wopi::names`], UTF-7 headers); REVA checks the user's rights.

use serde_json::json;

use super::{Answer, MobileRequest, MobileService, display_name, resource_of};
use crate::error::{ApiError, ErrorCode};
use crate::pb::cs3::storage::provider::v1beta1::ResourceInfo;
use crate::reva::RevaError;
use crate::reva::{by_id, child};
use crate::secret::Secret;
use crate::tokens::gateway::Claims;
use crate::wopi::operation::WopiOperation;
use crate::wopi::{names, utf7};
use crate::wopi_call::save_as::{Target, target_of};

/// Most numbered variants tried for a free name.
const MAX_NAME_TRIES: usize = 1000;

fn refusal(code: ErrorCode, message: &str, headers: Vec<(&'static str, String)>) -> Answer {
    let e = ApiError::new(code, message);
    Answer {
        status: e.status().as_u16(),
        body: e.body(),
        challenge: None,
        retry_after: None,
        headers,
    }
}

/// Not permitted for this user: 501, as WOPI lists it for these operations.
fn not_permitted(what: &str) -> Answer {
    refusal(ErrorCode::NotImplemented, what, Vec::new())
}

impl MobileService {
    pub(super) async fn container_write(
        &self,
        op: WopiOperation,
        req: &MobileRequest<'_>,
        c: &Claims,
        info: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Answer, ApiError> {
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
    ) -> Result<Answer, ApiError> {
        let invalid_header = if file {
            "X-WOPI-InvalidFileNameError"
        } else {
            "X-WOPI-InvalidContainerNameError"
        };
        let target = match target_of(&req.head.headers) {
            Ok(t) => t,
            // Both headers: 501 (the validator checks exactly that); neither: 400.
            Err(_)
                if req.head.headers.contains_key("x-wopi-suggestedtarget")
                    && req.head.headers.contains_key("x-wopi-relativetarget") =>
            {
                return Ok(not_permitted("give one of the two name headers"));
            }
            Err(r) => return Err(r.error),
        };
        let p = folder.permission_set.unwrap_or_default();
        if (file && !p.initiate_file_upload) || (!file && !p.create_container) {
            return Ok(not_permitted("no permission to create here"));
        }
        let parent = folder.id.clone().ok_or_else(ApiError::not_found)?;
        let taken = self.open.reva.names_in(reva, &parent).await?;
        let free = |n: &str| names::unique(n, MAX_NAME_TRIES, |x| taken.contains(x));
        let default_stem = if file { "New document" } else { "New folder" };
        let name = match target {
            Target::Suggested(s) => {
                let wanted = if file {
                    names::suggested(&s, default_stem)
                } else {
                    names::legalise(&s, default_stem)
                };
                match free(&wanted) {
                    Some(n) => n,
                    None => return Ok(refusal(ErrorCode::Conflict, "no free name", Vec::new())),
                }
            }
            Target::Relative { name, .. } if !names::is_legal(&name) => {
                return Ok(refusal(
                    ErrorCode::BadRequest,
                    "the name is not allowed",
                    vec![(invalid_header, "the name is not allowed".into())],
                ));
            }
            Target::Relative { name, overwrite } if taken.contains(&name) => {
                let proposal = free(&name)
                    .map(|n| vec![("X-WOPI-ValidRelativeTarget", utf7::encode(&n))])
                    .unwrap_or_default();
                return Ok(if file && overwrite {
                    // Overwriting with an empty file would destroy the document: refused as
                    // "not allowed" (wopi.md §5.5 permits 501).
                    not_permitted("overwriting a file with an empty one is not allowed")
                } else {
                    refusal(ErrorCode::Conflict, "the name is taken", proposal)
                });
            }
            Target::Relative { name, .. } => name,
        };
        let created = if file {
            self.open.reva.touch_file(reva, child(&parent, &name)).await
        } else {
            self.open
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
        let info = self.open.reva.stat_ref(reva, child(&parent, &name)).await?;
        if !file {
            let r = resource_of(&info)?;
            return Ok(Answer::ok(json!({
                "ContainerPointer": {
                    "Name": display_name(&info),
                    "Url": self.container_url(&c.user, &r, c.exp)?,
                },
                "ContainerInfo": self.container_info(&info),
            })));
        }
        let url = self.file_url(&c.user, &info, c.exp).await?;
        let mut answer = json!({ "Name": name, "Url": url });
        let ext = crate::open::extension_of(&name).unwrap_or_default();
        let app = self.settings.app.as_deref();
        if let Ok(choice) = self.open.discovery.choose(&ext, app).await {
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
        Ok(Answer::ok(answer))
    }

    /// 409 while it has children (wopi.md §5.6); the root is never deleted.
    async fn delete_container(
        &self,
        folder: &ResourceInfo,
        reva: &Secret,
    ) -> Result<Answer, ApiError> {
        let p = folder.permission_set.unwrap_or_default();
        if !p.delete || folder.parent_id.is_none() {
            return Ok(not_permitted("no permission to delete this folder"));
        }
        let id = folder.id.clone().ok_or_else(ApiError::not_found)?;
        if !self
            .open
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
        match self.open.reva.delete(reva, by_id(&id)).await {
            Ok(()) => Ok(Answer::ok(json!({}))),
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
    ) -> Result<Answer, ApiError> {
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
                .open
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
            .open
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
                Ok(Answer::ok(json!({ "Name": name })))
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
