//! Names a proxied WOPI request by its operation (wopi.md: method, path and `X-WOPI-Override`),
//! for metrics and the access log. Always one of a fixed set of names, whatever the client sent.

use http::Method;

pub fn operation(
    method: &Method,
    path: &str,
    override_header: Option<&[u8]>,
    has_old_lock: bool,
) -> &'static str {
    let contents = path.ends_with("/contents");
    match (method, contents) {
        (&Method::GET, false) => "CheckFileInfo",
        (&Method::GET, true) => "GetFile",
        (&Method::POST, true) => match override_header {
            None | Some(b"PUT") => "PutFile",
            Some(_) => "Other",
        },
        (&Method::POST, false) => match override_header.unwrap_or_default() {
            b"LOCK" if has_old_lock => "UnlockAndRelock",
            b"LOCK" => "Lock",
            b"UNLOCK" => "Unlock",
            b"REFRESH_LOCK" => "RefreshLock",
            b"GET_LOCK" => "GetLock",
            b"PUT_RELATIVE" => "PutRelativeFile",
            b"RENAME_FILE" => "RenameFile",
            b"DELETE" => "DeleteFile",
            b"PUT_USER_INFO" => "PutUserInfo",
            b"GET_SHARE_URL" => "GetShareUrl",
            _ => "Other",
        },
        _ => "Other",
    }
}

/// The operation of a mobile endpoint (bootstrapper, ecosystem, containers).
pub fn mobile_operation(method: &Method, path: &str, ecosystem_op: Option<&[u8]>) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    match (segs.as_slice(), get) {
        (["wopibootstrapper"], true) => "Bootstrap",
        (["wopibootstrapper"], false) => match ecosystem_op {
            Some(b"GET_ROOT_CONTAINER") => "GetRootContainer",
            Some(b"GET_NEW_ACCESS_TOKEN") => "GetNewAccessToken",
            None => "Bootstrap",
            Some(_) => "Other",
        },
        (["wopi", "ecosystem"], true) => "CheckEcosystem",
        (["wopi", "ecosystem", "root_container_pointer"], true) => "GetRootContainer",
        (["wopi", "containers", _], true) => "CheckContainerInfo",
        (["wopi", "containers", _, "children"], true) => "EnumerateChildren",
        ([.., "ancestry"], true) => "EnumerateAncestors",
        ([.., "ecosystem_pointer"], true) => "GetEcosystem",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_from_method_path_and_override() {
        let f = "/wopi/files/abc";
        let c = "/wopi/files/abc/contents";
        assert_eq!(operation(&Method::GET, f, None, false), "CheckFileInfo");
        assert_eq!(operation(&Method::GET, c, None, false), "GetFile");
        assert_eq!(operation(&Method::POST, c, Some(b"PUT"), false), "PutFile");
        assert_eq!(operation(&Method::POST, f, Some(b"LOCK"), false), "Lock");
        assert_eq!(
            operation(&Method::POST, f, Some(b"LOCK"), true),
            "UnlockAndRelock"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"UNLOCK"), false),
            "Unlock"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"REFRESH_LOCK"), false),
            "RefreshLock"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"GET_LOCK"), false),
            "GetLock"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"PUT_RELATIVE"), false),
            "PutRelativeFile"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"RENAME_FILE"), false),
            "RenameFile"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"DELETE"), false),
            "DeleteFile"
        );
        assert_eq!(
            operation(&Method::POST, f, Some(b"PUT_USER_INFO"), false),
            "PutUserInfo"
        );
        // Anything a client invents maps to one bounded label.
        assert_eq!(
            operation(&Method::POST, f, Some(b"x\"}evil"), false),
            "Other"
        );
        assert_eq!(operation(&Method::POST, f, None, false), "Other");
    }

    #[test]
    fn mobile_operations() {
        let g = Method::GET;
        assert_eq!(mobile_operation(&g, "/wopibootstrapper", None), "Bootstrap");
        assert_eq!(
            mobile_operation(
                &Method::POST,
                "/wopibootstrapper",
                Some(b"GET_NEW_ACCESS_TOKEN")
            ),
            "GetNewAccessToken"
        );
        assert_eq!(
            mobile_operation(&g, "/wopi/containers/x/children", None),
            "EnumerateChildren"
        );
        assert_eq!(
            mobile_operation(&g, "/wopi/files/x/ancestry", None),
            "EnumerateAncestors"
        );
        assert_eq!(
            mobile_operation(&g, "/wopi/ecosystem", None),
            "CheckEcosystem"
        );
        assert_eq!(
            mobile_operation(&Method::POST, "/wopi/containers/x", None),
            "Other"
        );
    }
}
