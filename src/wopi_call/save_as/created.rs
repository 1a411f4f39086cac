//! The file a Save As created in REVA, as an undo guard: removed again unless the Save As kept
//! it — after an error half-way through the preparation as much as when the request is dropped
//! — so a Save As that fails leaves nothing behind in the user's folder.

use crate::ids::Resource;
use crate::pb::cs3::storage::provider::v1beta1::{Reference, ResourceId};
use crate::reva::RevaClient;
use crate::secret::Secret;

pub struct Created {
    reva: RevaClient,
    token: Secret,
    /// How to reach it: by folder and name until REVA names its id.
    at: Reference,
    /// Its id, once REVA named it.
    pub resource: Option<Resource>,
    armed: bool,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("at", &self.at)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl Created {
    /// Just created at `at` (folder and name) with the user's REVA token.
    pub(super) fn new(reva: RevaClient, token: Secret, at: Reference) -> Self {
        Self {
            reva,
            token,
            at,
            resource: None,
            armed: true,
        }
    }

    /// REVA named its id: removed by id from now on (the name may be taken by then).
    pub(super) fn identified(&mut self, id: &ResourceId) {
        self.at = super::by_id(id);
        self.resource = Some(Resource::from(id));
    }

    /// The Save As completed: the file stays.
    pub fn keep(mut self) {
        self.armed = false;
    }

    /// Removes it now.
    pub async fn remove(mut self) {
        self.armed = false;
        remove(&self.reva, &self.token, self.at.clone()).await;
    }
}

async fn remove(reva: &RevaClient, token: &Secret, at: Reference) {
    match reva.delete(token, at).await {
        Ok(()) => tracing::info!("removed the file of a failed PutRelativeFile"),
        Err(e) => {
            tracing::warn!(error = %e, "could not remove the file of a failed PutRelativeFile")
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (reva, token, at) = (self.reva.clone(), self.token.clone(), self.at.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { remove(&reva, &token, at).await });
            }
            Err(_) => tracing::warn!("could not remove the file of a failed PutRelativeFile"),
        }
    }
}
