//! Every form a resource id takes on the wire, parsed and built here only (style.md principle
//! 10): the file ids callers send to the open API (reva.md §7: legacy padded base64 of
//! `storage:opaque`, `storage$space!opaque`), the gateway's own path ids in the URLs it hands out,
//! and the wopiserver's inodes (cs3-wopiserver.md §8, §12.3).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::pb::cs3::storage::provider::v1beta1::ResourceId;

const MAX_FILE_ID: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileIdError {
    #[error("fileId is missing")]
    Missing,
    #[error("fileId is too long")]
    TooLong,
    #[error("fileId is not a valid resource id")]
    Invalid,
}

/// Decodes `storage$space!opaque`, `storage!opaque`, or the 2021 padded URL-safe base64 of
/// `storage:opaque` (unpadded accepted too).
pub fn decode_file_id(raw: &str) -> Result<ResourceId, FileIdError> {
    if raw.is_empty() {
        return Err(FileIdError::Missing);
    }
    if raw.len() > MAX_FILE_ID {
        return Err(FileIdError::TooLong);
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(FileIdError::Invalid);
    }
    if let Some((storage, opaque)) = raw.split_once('!') {
        let (storage_id, space_id) = match storage.split_once('$') {
            Some((s, sp)) => (s, sp),
            None => (storage, ""),
        };
        return build(storage_id, space_id, opaque);
    }
    let bytes = URL_SAFE
        .decode(raw)
        .or_else(|_| URL_SAFE_NO_PAD.decode(raw))
        .map_err(|_| FileIdError::Invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| FileIdError::Invalid)?;
    let (storage_id, opaque) = text.split_once(':').ok_or(FileIdError::Invalid)?;
    build(storage_id, "", opaque)
}

fn build(storage_id: &str, space_id: &str, opaque_id: &str) -> Result<ResourceId, FileIdError> {
    let bad = |s: &str| s.chars().any(|c| c.is_control());
    if storage_id.is_empty()
        || opaque_id.is_empty()
        || bad(storage_id)
        || bad(opaque_id)
        || bad(space_id)
    {
        return Err(FileIdError::Invalid);
    }
    Ok(ResourceId {
        storage_id: storage_id.to_owned(),
        opaque_id: opaque_id.to_owned(),
        space_id: space_id.to_owned(),
    })
}

/// The wopiserver's `endpoint` parameter: `storage_id` or `storage_id$space_id`.
pub fn endpoint_of(id: &ResourceId) -> String {
    if id.space_id.is_empty() {
        id.storage_id.clone()
    } else {
        format!("{}${}", id.storage_id, id.space_id)
    }
}

/// The legacy 2021 form, for clients and tests.
pub fn encode_legacy(storage_id: &str, opaque_id: &str) -> String {
    URL_SAFE.encode(format!("{storage_id}:{opaque_id}"))
}

/// A REVA resource id as the gateway carries it (short field names: it travels sealed in
/// gateway tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "s")]
    pub storage_id: String,
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    pub space_id: String,
    #[serde(rename = "o")]
    pub opaque_id: String,
}

impl From<&ResourceId> for Resource {
    fn from(id: &ResourceId) -> Self {
        Self {
            storage_id: id.storage_id.clone(),
            space_id: id.space_id.clone(),
            opaque_id: id.opaque_id.clone(),
        }
    }
}

impl From<&Resource> for ResourceId {
    fn from(r: &Resource) -> Self {
        ResourceId {
            storage_id: r.storage_id.clone(),
            space_id: r.space_id.clone(),
            opaque_id: r.opaque_id.clone(),
        }
    }
}

/// The resource a `/wopi/files/<id>` or `/wopi/containers/<id>` path segment names: the
/// gateway's own id (URL-safe base64 of `storage$space!opaque`) or the wopiserver's inode.
pub fn resource_of_path_id(id: &str) -> Option<Resource> {
    if id.contains('!') {
        return resource_of_inode(id, "");
    }
    let text = URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let r = decode_file_id(&text).ok()?;
    Some(Resource::from(&r))
}

/// REVA's text form of a resource id, `storage$space!opaque` (`storage!opaque` without a
/// space): what operators and the admin API name files by.
pub fn file_id_text(r: &Resource) -> String {
    if r.space_id.is_empty() {
        format!("{}!{}", r.storage_id, r.opaque_id)
    } else {
        format!("{}${}!{}", r.storage_id, r.space_id, r.opaque_id)
    }
}

/// The gateway's id for a resource in URLs it hands out.
pub fn path_id_of(r: &Resource) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}${}!{}", r.storage_id, r.space_id, r.opaque_id))
}

/// Whether a path id names the token's resource (the inode form carries no space id).
pub fn path_matches(id: &str, r: &Resource) -> bool {
    resource_of_path_id(id).is_some_and(|p| {
        p.storage_id == r.storage_id
            && p.opaque_id == r.opaque_id
            && (p.space_id.is_empty() || p.space_id == r.space_id)
    })
}

/// The id segment of a `/wopi/files/<id>[/…]` path.
pub fn file_id_of_path(path: &str) -> Option<&str> {
    path.strip_prefix("/wopi/files/")?.split('/').next()
}

/// The file a wopiserver WOPISrc names: `/wopi/files/<storage>!<urlsafe b64(opaque)>`.
pub fn resource_of_inode(inode: &str, space_id: &str) -> Option<Resource> {
    let (storage, b64) = inode.split_once('!')?;
    let opaque = URL_SAFE
        .decode(b64)
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    (!storage.is_empty() && !opaque.is_empty()).then(|| Resource {
        storage_id: storage.to_owned(),
        space_id: space_id.to_owned(),
        opaque_id: opaque,
    })
}

/// The wopiserver's inode for a resource (cs3-wopiserver.md §8).
pub fn inode_of(r: &Resource) -> String {
    format!("{}!{}", r.storage_id, URL_SAFE.encode(&r.opaque_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_forms_decode() {
        let id = decode_file_id(&encode_legacy("storage-1", "abc:def")).unwrap();
        assert_eq!(
            (id.storage_id.as_str(), id.opaque_id.as_str()),
            ("storage-1", "abc:def")
        );
        let id = decode_file_id("st$sp!op").unwrap();
        assert_eq!(
            (
                id.storage_id.as_str(),
                id.space_id.as_str(),
                id.opaque_id.as_str()
            ),
            ("st", "sp", "op")
        );
        let id = decode_file_id("st!op").unwrap();
        assert_eq!((id.storage_id.as_str(), id.space_id.as_str()), ("st", ""));
        let unpadded = encode_legacy("s", "o").trim_end_matches('=').to_owned();
        assert_eq!(decode_file_id(&unpadded).unwrap().opaque_id, "o");
        assert_eq!(endpoint_of(&decode_file_id("st$sp!op").unwrap()), "st$sp");
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "!op",
            "st!",
            "%%%",
            "bm9jb2xvbg==",
            "st!o\u{0}p",
            &"a".repeat(5000),
        ] {
            assert!(decode_file_id(bad).is_err(), "{bad:?} accepted");
        }
        // valid base64 of invalid UTF-8
        assert!(decode_file_id(&URL_SAFE.encode([0xff, 0xfe, b':', b'a'])).is_err());
    }

    #[test]
    fn inodes_round_trip() {
        let r = Resource {
            storage_id: "st".into(),
            space_id: "sp".into(),
            opaque_id: "op/x+1".into(),
        };
        assert_eq!(resource_of_inode(&inode_of(&r), "sp").unwrap(), r);
        assert!(resource_of_inode("no-bang", "").is_none());
    }
}
