//! The ecosystem and container endpoints (wopi.md §5–§6), authorised by gateway tokens:
//! CheckEcosystem, GetRootContainer, CheckContainerInfo, EnumerateChildren, EnumerateAncestors
//! and GetEcosystem, answered from REVA.

use serde_json::{Value, json};

use super::{
    MobileRequest, MobileService, display_name, not_implemented, resource_of, time, version_of,
};
use crate::control::revocation::Presented;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::ids::{Resource, path_matches};
use crate::pb::cs3::storage::provider::v1beta1::{ResourceId, ResourceInfo, ResourceType};
use crate::secret::Secret;
use crate::tokens::carriers::{self, BearerForm};
use crate::tokens::gateway::{Claims, Kind};
use crate::tokens::now;
use crate::wopi::operation::WopiOperation;
use crate::wopi::route::{MobileEndpoint, Target};

impl MobileService {
    /// Verifies a gateway token for the mobile endpoints: sealed, unexpired, of `kind`, and
    /// (for containers and files) for the resource in the path.
    fn claims(
        &self,
        req: &MobileRequest<'_>,
        kind: Kind,
        path_id: Option<&str>,
    ) -> Result<Claims, ApiError> {
        let invalid = |m: &str| ApiError::new(ErrorCode::InvalidToken, m);
        let token = req
            .access_token
            .clone()
            .or_else(|| {
                req.authorization().and_then(|a| {
                    carriers::bearer(a, BearerForm::Standard)
                        .ok()
                        .map(str::to_owned)
                })
            })
            .ok_or_else(|| invalid("access_token missing"))?;
        let claims = self
            .wrap
            .keys
            .verify(&token, now())
            .map_err(|e| invalid(&e.to_string()))?;
        if self
            .backends
            .control
            .revoked(&Presented::gateway(&claims), "mobile")
        {
            return Err(ApiError::revoked());
        }
        if claims.kind() != kind {
            return Err(invalid("the token is not for this kind of resource"));
        }
        if let Some(id) = path_id {
            let ok = claims.resource().is_some_and(|r| path_matches(id, r));
            if !ok {
                return Err(invalid("the token is not for this resource"));
            }
        }
        Ok(claims)
    }

    /// `/wopi/ecosystem…`, `/wopi/containers/…` and `/wopi/files/<id>/{ancestry,ecosystem_pointer}`:
    /// the token is checked against the endpoint's target before anything else.
    pub(super) async fn wopi(
        &self,
        endpoint: MobileEndpoint,
        req: &MobileRequest<'_>,
    ) -> Result<Reply, ApiError> {
        let kind = match endpoint.target {
            Target::Ecosystem => Kind::Ecosystem,
            Target::Container => Kind::Container,
            Target::File => Kind::File,
        };
        // `/wopi/<containers|files>/<id>/…`: the classified path has its id third.
        let id = match endpoint.target {
            Target::Ecosystem => None,
            _ => req.head.uri.path().split('/').nth(3),
        };
        let c = self.claims(req, kind, id)?;
        use WopiOperation as Op;
        match endpoint.operation {
            Op::CheckEcosystem => Ok(Reply::json(&json!({"SupportsContainers": true}))),
            Op::GetRootContainer => {
                let reva = self.reva_token(&c.user).await?;
                Ok(Reply::json(&self.root_container(&c, &reva).await?))
            }
            Op::CheckContainerInfo => {
                let info = self.container(&c).await?;
                Ok(Reply::json(&self.container_info(&info)))
            }
            Op::EnumerateChildren => self.children(req, &c).await,
            Op::EnumerateAncestors => self.ancestry(&c).await,
            Op::GetEcosystem => Ok(Reply::json(&json!({"Url": self.ecosystem_url(&c)?}))),
            Op::CreateChildFile
            | Op::CreateChildContainer
            | Op::DeleteContainer
            | Op::RenameContainer => {
                let info = self.container(&c).await?;
                let reva = self.reva_token(&c.user).await?;
                self.container_write(endpoint.operation, req, &c, &info, &reva)
                    .await
            }
            // Ecosystem writes, GetShareUrl and GetFileWopiSrc are not implemented against
            // REVA.
            _ => Err(not_implemented()),
        }
    }

    pub(super) async fn container(&self, c: &Claims) -> Result<ResourceInfo, ApiError> {
        let r = c.resource().ok_or_else(ApiError::not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let info = self.stat(&reva, r).await?;
        if info.r#type() != ResourceType::Container {
            return Err(ApiError::not_found());
        }
        Ok(info)
    }

    /// EnumerateChildren: every child, files filtered by `X-WOPI-FileExtensionFilterList`;
    /// children's URLs carry fresh tokens with the calling token's expiry (wopi.md §2).
    async fn children(&self, req: &MobileRequest<'_>, c: &Claims) -> Result<Reply, ApiError> {
        let r = c.resource().ok_or_else(ApiError::not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let info = self.stat(&reva, r).await?;
        if info.r#type() != ResourceType::Container {
            return Err(ApiError::not_found());
        }
        let filter: Option<Vec<String>> = req.header("x-wopi-fileextensionfilterlist").map(|f| {
            f.split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect()
        });
        let list = self
            .backends
            .reva
            .list_container(&reva, ResourceId::from(r))
            .await?;
        let (mut containers, mut files) = (Vec::new(), Vec::new());
        for child in &list {
            if !child.permission_set.as_ref().is_some_and(|p| p.stat) {
                continue;
            }
            let Some(id) = &child.id else { continue };
            match child.r#type() {
                ResourceType::Container => containers.push(json!({
                    "Name": display_name(child),
                    "Url": self.container_url(c, &Resource::from(id))?,
                })),
                ResourceType::File => {
                    let name = display_name(child);
                    if let Some(f) = &filter {
                        let ext = crate::open::extension_of(&name).unwrap_or_default();
                        if !f.contains(&ext) {
                            continue;
                        }
                    }
                    let mut entry = json!({
                        "Name": name,
                        "Url": self.file_url(c, child).await?,
                        "Version": version_of(child),
                        "Size": child.size,
                    });
                    if let Some(t) = &child.mtime {
                        entry["LastModifiedTime"] = json!(time::iso8601(t.seconds, t.nanos));
                    }
                    files.push(entry);
                }
                _ => {}
            }
        }
        Ok(Reply::json(
            &json!({"ChildContainers": containers, "ChildFiles": files}),
        ))
    }

    /// EnumerateAncestors: parents up to the user's home (the root container), root first.
    async fn ancestry(&self, c: &Claims) -> Result<Reply, ApiError> {
        let r = c.resource().ok_or_else(ApiError::not_found)?;
        let reva = self.reva_token(&c.user).await?;
        let home = self.home(&reva).await?;
        let home_id = home.id.clone().ok_or_else(ApiError::not_found)?;
        let mut info = self.stat(&reva, r).await?;
        let mut chain = Vec::new();
        // Bounded walk: a cycle or a very deep tree cannot hold the request.
        for _ in 0..64 {
            let is_home = info.id.as_ref().is_some_and(|i| {
                i.storage_id == home_id.storage_id && i.opaque_id == home_id.opaque_id
            });
            if is_home {
                break;
            }
            let Some(parent) = info.parent_id.clone() else {
                break;
            };
            info = self.stat(&reva, &Resource::from(&parent)).await?;
            chain.push(json!({
                "Name": display_name(&info),
                "Url": self.container_url(c, &Resource::from(&parent))?,
            }));
        }
        chain.reverse();
        Ok(Reply::json(&json!({"AncestorsWithRootFirst": chain})))
    }

    /// What the user may do here, from REVA's permissions (reva.md §6.3 mapping), exactly
    /// what the container writes below allow.
    pub(super) fn container_info(&self, info: &ResourceInfo) -> Value {
        let p = info.permission_set.unwrap_or_default();
        json!({
            "Name": display_name(info),
            "UserCanCreateChildContainer": p.create_container,
            "UserCanCreateChildFile": p.initiate_file_upload,
            "UserCanDelete": p.delete && info.parent_id.is_some(),
            "UserCanRename": p.r#move && info.parent_id.is_some(),
            "IsAnonymousUser": false,
            "IsEduUser": self.settings.is_edu_user,
            "LicenseCheckForEditIsEnabled": self.settings.license_check_for_edit,
        })
    }

    pub(super) async fn root_container(
        &self,
        from: &Claims,
        reva: &Secret,
    ) -> Result<Value, ApiError> {
        let home = self.home(reva).await?;
        let r = resource_of(&home)?;
        Ok(json!({
            "ContainerPointer": {"Name": display_name(&home), "Url": self.container_url(from, &r)?},
            "ContainerInfo": self.container_info(&home),
        }))
    }
}
