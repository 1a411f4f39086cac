//! How the flows name what they ask REVA about: a resource by its id, an entry by its folder
//! and name, and the names a folder holds.

use std::collections::HashSet;

use super::{RevaClient, RevaError};
use crate::pb::cs3::storage::provider::v1beta1::{Reference, ResourceId};
use crate::secret::Secret;
use crate::wopi::names;

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

impl RevaClient {
    /// The names in a folder (a new one must differ from all of them).
    pub async fn names_in(
        &self,
        token: &Secret,
        folder: &ResourceId,
    ) -> Result<HashSet<String>, RevaError> {
        Ok(self
            .list_container(token, folder.clone())
            .await?
            .iter()
            .map(|i| names::of(i).to_owned())
            .collect())
    }
}
