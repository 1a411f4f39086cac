//! Resource-id strings as callers send them (reva.md §7, cs3-wopiserver.md §12.3).

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

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
}
