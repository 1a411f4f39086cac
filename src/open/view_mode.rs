//! View mode from permissions, with REVA's `resolveViewMode` semantics (cs3-wopiserver.md §13).

use crate::pb::cs3::storage::provider::v1beta1::ResourcePermissions;
use crate::wopi::ViewMode;

/// `None` when the user may not even read the file.
pub fn resolve(
    perms: Option<&ResourcePermissions>,
    requested: Option<ViewMode>,
) -> Option<ViewMode> {
    let perms = perms?;
    let can_download = perms.initiate_file_download;
    let can_upload = perms.initiate_file_upload;
    let requested = requested.unwrap_or(ViewMode::ReadWrite);
    match (can_upload, can_download) {
        (true, true) => Some(requested),
        (false, true) => Some(match requested {
            ViewMode::ReadWrite | ViewMode::Preview => ViewMode::ReadOnly,
            other => other,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(upload: bool, download: bool) -> ResourcePermissions {
        ResourcePermissions {
            initiate_file_upload: upload,
            initiate_file_download: download,
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        use ViewMode::*;
        let cases = [
            (perms(true, true), None, Some(ReadWrite)),
            (perms(true, true), Some(ViewOnly), Some(ViewOnly)),
            (perms(false, true), None, Some(ReadOnly)),
            (perms(false, true), Some(ReadWrite), Some(ReadOnly)),
            (perms(false, true), Some(Preview), Some(ReadOnly)),
            (perms(false, true), Some(ViewOnly), Some(ViewOnly)),
            (perms(true, false), None, None),
            (perms(false, false), Some(ReadOnly), None),
        ];
        for (p, req, want) in cases {
            assert_eq!(resolve(Some(&p), req), want, "{p:?} {req:?}");
        }
        assert_eq!(resolve(None, None), None);
    }
}
