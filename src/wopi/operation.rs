//! WOPI operations by name (wopi.md §1.2 dispatch table, §6–§7 for the mobile ones): what a
//! request asks for, named once at classification ([`super::route`]) and taken from there by
//! metrics, the access log and the proof, token and rewrite checks. A closed set: whatever a
//! client sends maps to one of these names.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WopiOperation {
    CheckFileInfo,
    GetFile,
    PutFile,
    Lock,
    UnlockAndRelock,
    Unlock,
    RefreshLock,
    GetLock,
    PutRelativeFile,
    RenameFile,
    DeleteFile,
    PutUserInfo,
    GetShareUrl,
    /// `GET /wopibootstrapper`, or a POST without an ecosystem operation.
    Bootstrap,
    GetRootContainer,
    GetNewAccessToken,
    CheckEcosystem,
    CheckContainerInfo,
    EnumerateChildren,
    EnumerateAncestors,
    GetEcosystem,
    CreateChildFile,
    CreateChildContainer,
    DeleteContainer,
    RenameContainer,
    /// Anything a client invents, and the operations the gateway does not implement.
    Other,
}

impl WopiOperation {
    /// The metric label and access-log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckFileInfo => "CheckFileInfo",
            Self::GetFile => "GetFile",
            Self::PutFile => "PutFile",
            Self::Lock => "Lock",
            Self::UnlockAndRelock => "UnlockAndRelock",
            Self::Unlock => "Unlock",
            Self::RefreshLock => "RefreshLock",
            Self::GetLock => "GetLock",
            Self::PutRelativeFile => "PutRelativeFile",
            Self::RenameFile => "RenameFile",
            Self::DeleteFile => "DeleteFile",
            Self::PutUserInfo => "PutUserInfo",
            Self::GetShareUrl => "GetShareUrl",
            Self::Bootstrap => "Bootstrap",
            Self::GetRootContainer => "GetRootContainer",
            Self::GetNewAccessToken => "GetNewAccessToken",
            Self::CheckEcosystem => "CheckEcosystem",
            Self::CheckContainerInfo => "CheckContainerInfo",
            Self::EnumerateChildren => "EnumerateChildren",
            Self::EnumerateAncestors => "EnumerateAncestors",
            Self::GetEcosystem => "GetEcosystem",
            Self::CreateChildFile => "CreateChildFile",
            Self::CreateChildContainer => "CreateChildContainer",
            Self::DeleteContainer => "DeleteContainer",
            Self::RenameContainer => "RenameContainer",
            Self::Other => "Other",
        }
    }

    /// A `/wopi/files/<id>[/contents]` request, by method, path and `X-WOPI-Override`.
    pub fn of_file(
        method: &Method,
        contents: bool,
        override_header: Option<&[u8]>,
        has_old_lock: bool,
    ) -> Self {
        match (method, contents) {
            (&Method::GET, false) => Self::CheckFileInfo,
            (&Method::GET, true) => Self::GetFile,
            (&Method::POST, true) => match override_header {
                None | Some(b"PUT") => Self::PutFile,
                Some(_) => Self::Other,
            },
            (&Method::POST, false) => match override_header.unwrap_or_default() {
                b"LOCK" if has_old_lock => Self::UnlockAndRelock,
                b"LOCK" => Self::Lock,
                b"UNLOCK" => Self::Unlock,
                b"REFRESH_LOCK" => Self::RefreshLock,
                b"GET_LOCK" => Self::GetLock,
                b"PUT_RELATIVE" => Self::PutRelativeFile,
                b"RENAME_FILE" => Self::RenameFile,
                b"DELETE" => Self::DeleteFile,
                b"PUT_USER_INFO" => Self::PutUserInfo,
                b"GET_SHARE_URL" => Self::GetShareUrl,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// A `POST /wopi/containers/<id>` write, by `X-WOPI-Override` (wopi.md §5.4–§5.6).
    pub fn of_container_write(override_header: Option<&[u8]>) -> Self {
        match override_header.unwrap_or_default() {
            b"CREATE_CHILD_FILE" => Self::CreateChildFile,
            b"CREATE_CHILD_CONTAINER" => Self::CreateChildContainer,
            b"DELETE_CONTAINER" => Self::DeleteContainer,
            b"RENAME_CONTAINER" => Self::RenameContainer,
            _ => Self::Other,
        }
    }

    /// A bootstrapper request, by method and `X-WOPI-EcosystemOperation` (wopi.md §7).
    pub fn of_bootstrapper(method: &Method, ecosystem_op: Option<&[u8]>) -> Self {
        if method == Method::GET {
            return Self::Bootstrap;
        }
        match ecosystem_op {
            None => Self::Bootstrap,
            Some(b"GET_ROOT_CONTAINER") => Self::GetRootContainer,
            Some(b"GET_NEW_ACCESS_TOKEN") => Self::GetNewAccessToken,
            Some(_) => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WopiOperation as Op;

    #[test]
    fn file_operations_from_method_path_and_override() {
        let (g, p) = (&Method::GET, &Method::POST);
        assert_eq!(Op::of_file(g, false, None, false), Op::CheckFileInfo);
        assert_eq!(Op::of_file(g, true, None, false), Op::GetFile);
        assert_eq!(Op::of_file(p, true, Some(b"PUT"), false), Op::PutFile);
        assert_eq!(Op::of_file(p, false, Some(b"LOCK"), false), Op::Lock);
        assert_eq!(
            Op::of_file(p, false, Some(b"LOCK"), true),
            Op::UnlockAndRelock
        );
        assert_eq!(Op::of_file(p, false, Some(b"UNLOCK"), false), Op::Unlock);
        assert_eq!(
            Op::of_file(p, false, Some(b"REFRESH_LOCK"), false),
            Op::RefreshLock
        );
        assert_eq!(Op::of_file(p, false, Some(b"GET_LOCK"), false), Op::GetLock);
        assert_eq!(
            Op::of_file(p, false, Some(b"PUT_RELATIVE"), false),
            Op::PutRelativeFile
        );
        assert_eq!(
            Op::of_file(p, false, Some(b"RENAME_FILE"), false),
            Op::RenameFile
        );
        assert_eq!(
            Op::of_file(p, false, Some(b"DELETE"), false),
            Op::DeleteFile
        );
        assert_eq!(
            Op::of_file(p, false, Some(b"PUT_USER_INFO"), false),
            Op::PutUserInfo
        );
        // Anything a client invents maps to one bounded label.
        assert_eq!(Op::of_file(p, false, Some(b"x\"}evil"), false), Op::Other);
        assert_eq!(Op::of_file(p, false, None, false), Op::Other);
        assert_eq!(Op::Other.as_str(), "Other");
        assert_eq!(Op::UnlockAndRelock.as_str(), "UnlockAndRelock");
    }

    #[test]
    fn bootstrapper_operations() {
        let p = &Method::POST;
        assert_eq!(Op::of_bootstrapper(&Method::GET, None), Op::Bootstrap);
        assert_eq!(
            Op::of_bootstrapper(p, Some(b"GET_NEW_ACCESS_TOKEN")),
            Op::GetNewAccessToken
        );
        assert_eq!(
            Op::of_bootstrapper(p, Some(b"GET_ROOT_CONTAINER")),
            Op::GetRootContainer
        );
        assert_eq!(Op::of_bootstrapper(p, Some(b"NEW")), Op::Other);
        assert_eq!(Op::of_bootstrapper(p, None), Op::Bootstrap);
    }
}
