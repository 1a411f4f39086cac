//! The storage both fakes share: REVA answers Stat/ListContainer from it and the fake
//! wopiserver reads and writes file contents in it, as the real pair share REVA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wopigate::pb::cs3::storage::provider::v1beta1::{
    ResourceId, ResourceInfo, ResourcePermissions, ResourceType,
};

#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Vec<u8>),
    /// `len` bytes of a repeating pattern, generated on the fly (large-file tests).
    Synthetic(u64),
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Synthetic(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: ResourceId,
    pub parent: Option<ResourceId>,
    pub name: String,
    pub path: String,
    pub container: bool,
    pub content: Content,
    pub version: u64,
    /// Permissions by user opaque id; users not listed get `default_perms`.
    pub perms: HashMap<String, ResourcePermissions>,
    pub default_perms: ResourcePermissions,
}

pub fn full_perms() -> ResourcePermissions {
    ResourcePermissions {
        initiate_file_download: true,
        initiate_file_upload: true,
        stat: true,
        list_container: true,
        create_container: true,
        delete: true,
        r#move: true,
        get_path: true,
        ..Default::default()
    }
}

pub fn read_only_perms() -> ResourcePermissions {
    ResourcePermissions {
        initiate_file_download: true,
        stat: true,
        list_container: true,
        get_path: true,
        ..Default::default()
    }
}

impl Entry {
    pub fn perms_for(&self, user: &str) -> ResourcePermissions {
        self.perms.get(user).cloned().unwrap_or(self.default_perms)
    }

    pub fn info_for(&self, user: &str) -> ResourceInfo {
        ResourceInfo {
            r#type: if self.container {
                ResourceType::Container
            } else {
                ResourceType::File
            } as i32,
            id: Some(self.id.clone()),
            etag: format!("\"{}\"", self.version),
            mime_type: if self.container {
                "httpd/unix-directory".into()
            } else {
                "application/octet-stream".into()
            },
            path: self.path.clone(),
            permission_set: Some(self.perms_for(user)),
            size: self.content.len(),
            parent_id: self.parent.clone(),
            name: self.name.clone(),
            mtime: Some(wopigate::pb::cs3::types::v1beta1::Timestamp {
                seconds: 1_700_000_000 + self.version,
                nanos: 0,
            }),
            ..Default::default()
        }
    }
}

fn key(id: &ResourceId) -> (String, String) {
    (id.storage_id.clone(), id.opaque_id.clone())
}

/// Shared, mutable file tree.
#[derive(Clone, Default)]
pub struct Tree {
    inner: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

impl Tree {
    pub fn insert(&self, e: Entry) {
        self.inner.lock().unwrap().insert(key(&e.id), e);
    }

    pub fn get(&self, id: &ResourceId) -> Option<Entry> {
        self.inner.lock().unwrap().get(&key(id)).cloned()
    }

    pub fn get_by_path(&self, path: &str) -> Option<Entry> {
        self.inner
            .lock()
            .unwrap()
            .values()
            .find(|e| e.path == path)
            .cloned()
    }

    pub fn get_by(&self, storage_id: &str, opaque_id: &str) -> Option<Entry> {
        self.inner
            .lock()
            .unwrap()
            .get(&(storage_id.to_owned(), opaque_id.to_owned()))
            .cloned()
    }

    pub fn update(&self, storage_id: &str, opaque_id: &str, f: impl FnOnce(&mut Entry)) -> bool {
        let mut g = self.inner.lock().unwrap();
        match g.get_mut(&(storage_id.to_owned(), opaque_id.to_owned())) {
            Some(e) => {
                f(e);
                true
            }
            None => false,
        }
    }

    /// Removes an entry and everything below it.
    pub fn remove(&self, id: &ResourceId) -> Option<Entry> {
        let mut g = self.inner.lock().unwrap();
        let gone = g.remove(&key(id))?;
        let prefix = format!("{}/", gone.path);
        g.retain(|_, e| !e.path.starts_with(&prefix));
        Some(gone)
    }

    /// Renames an entry in place (its id stays); paths below it follow.
    pub fn rename(&self, id: &ResourceId, name: &str) -> bool {
        let mut g = self.inner.lock().unwrap();
        let Some(e) = g.get_mut(&key(id)) else {
            return false;
        };
        let old = e.path.clone();
        let parent = old.rsplit_once('/').map_or("", |(p, _)| p).to_owned();
        e.name = name.into();
        e.path = format!("{parent}/{name}");
        let new = e.path.clone();
        let prefix = format!("{old}/");
        for e in g.values_mut() {
            if let Some(rest) = e.path.strip_prefix(&prefix) {
                e.path = format!("{new}/{rest}");
            }
        }
        true
    }

    pub fn children(&self, parent: &ResourceId) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .inner
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.parent.as_ref().is_some_and(|p| key(p) == key(parent)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Adds a file under `parent` with full permissions for everyone.
    pub fn add_file(
        &self,
        storage: &str,
        opaque: &str,
        parent: Option<&str>,
        name: &str,
        content: Content,
    ) {
        let parent_id = parent.map(|p| ResourceId {
            storage_id: storage.into(),
            opaque_id: p.into(),
            space_id: String::new(),
        });
        let parent_path = parent_id
            .as_ref()
            .and_then(|p| self.get(p))
            .map(|p| p.path)
            .unwrap_or_default();
        self.insert(Entry {
            id: ResourceId {
                storage_id: storage.into(),
                opaque_id: opaque.into(),
                space_id: String::new(),
            },
            parent: parent_id,
            name: name.into(),
            path: format!("{parent_path}/{name}"),
            container: false,
            content,
            version: 1,
            perms: HashMap::new(),
            default_perms: full_perms(),
        });
    }

    pub fn add_folder(&self, storage: &str, opaque: &str, parent: Option<&str>, name: &str) {
        self.add_file(storage, opaque, parent, name, Content::Bytes(Vec::new()));
        self.update(storage, opaque, |e| e.container = true);
    }

    pub fn set_perms(&self, storage: &str, opaque: &str, perms: ResourcePermissions) {
        self.update(storage, opaque, |e| e.default_perms = perms);
    }

    /// Makes a file one user's own: everybody else has no permission at all on it.
    pub fn set_owner(&self, storage: &str, opaque: &str, user_opaque_id: &str) {
        self.update(storage, opaque, |e| {
            e.default_perms = ResourcePermissions::default();
            e.perms.insert(user_opaque_id.to_owned(), full_perms());
        });
    }
}
