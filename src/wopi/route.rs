//! The public listener's URL table (wopi.md §1.1, cs3-wopiserver.md §2): every route and the
//! WOPI operation it carries, classified once per request. Decisions are made on a strictly
//! validated path: anything that could be read two ways (encoded slashes, dot segments,
//! backslashes, NUL) is refused rather than normalised (security.md §3.2).

use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use super::operation::WopiOperation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v0/wopi/open`
    LegacyOpen,
    /// `POST /app/open`
    AppOpen,
    /// `GET /app/list`
    AppList,
    /// `POST /oidc/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0).
    BackchannelLogout,
    /// `/wopi/files/<id>[/contents]`, proxied to the wopiserver.
    WopiFile(WopiOperation),
    /// `/wopibootstrapper` (Office for iOS/Android, OAuth-authenticated).
    Bootstrapper(WopiOperation),
    /// Ecosystem, container, and file ancestry/ecosystem endpoints served from REVA.
    MobileWopi(MobileEndpoint),
    /// `/wopi/iop/*`, `/wopi/cbox/*`: internal only, never served here.
    Internal,
    NotFound,
    MethodNotAllowed,
    BadPath(&'static str),
}

/// What a mobile endpoint is about: the ecosystem, or the container or file its path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ecosystem,
    Container,
    File,
}

/// A mobile endpoint: its operation and what it is about. `Other` on a container or the
/// ecosystem is a write the gateway does not implement (wopi.md §5.4–§5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobileEndpoint {
    pub operation: WopiOperation,
    pub target: Target,
}

impl Route {
    /// Closed label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::LegacyOpen => "legacy_open",
            Self::AppOpen => "app_open",
            Self::AppList => "app_list",
            Self::BackchannelLogout => "backchannel_logout",
            Self::WopiFile(_) => "wopi_file",
            Self::Bootstrapper(_) => "bootstrapper",
            Self::MobileWopi(_) => "mobile_wopi",
            Self::Internal => "internal",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadPath(_) => "bad_path",
        }
    }

    /// The WOPI operation of a WOPI or mobile request.
    pub fn operation(&self) -> Option<WopiOperation> {
        match self {
            Self::WopiFile(op) | Self::Bootstrapper(op) => Some(*op),
            Self::MobileWopi(e) => Some(e.operation),
            _ => None,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// Longest path accepted.
const MAX_PATH: usize = 4096;

/// The route and operation of a request, from its method, path and WOPI headers.
pub fn classify(method: &Method, path: &str, headers: &HeaderMap) -> Route {
    if path.len() > MAX_PATH {
        return Route::BadPath("path too long");
    }
    if !path.starts_with('/') {
        return Route::BadPath("path must be absolute");
    }
    let mut segments: Vec<String> = Vec::with_capacity(6);
    // A single trailing slash is tolerated for matching; inner empty segments are not.
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    for raw in trimmed[1..].split('/') {
        let decoded = match percent_decode_str(raw).decode_utf8() {
            Ok(d) => d,
            Err(_) => return Route::BadPath("path is not valid UTF-8"),
        };
        if decoded
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Route::BadPath("path segment contains a forbidden character");
        }
        if raw.is_empty() && trimmed != "/" {
            return Route::BadPath("empty path segment");
        }
        if decoded == "." || decoded == ".." {
            return Route::BadPath("dot segment in path");
        }
        if raw.contains(';') {
            return Route::BadPath("path parameters are not allowed");
        }
        segments.push(decoded.into_owned());
    }
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    // Blocking is case-insensitive even though Flask routes are not (security.md R3).
    if seg.len() >= 2
        && seg[0].eq_ignore_ascii_case("wopi")
        && (seg[1].eq_ignore_ascii_case("iop") || seg[1].eq_ignore_ascii_case("cbox"))
    {
        return Route::Internal;
    }
    use {Target as T, WopiOperation as Op};
    let get = method == Method::GET;
    let mobile = |operation, target| Route::MobileWopi(MobileEndpoint { operation, target });
    let (route, allowed): (Route, &[Method]) = match seg.as_slice() {
        ["api", "v0", "wopi", "open"] => (Route::LegacyOpen, &[Method::GET]),
        ["app", "open"] => (Route::AppOpen, &[Method::POST]),
        ["app", "list"] => (Route::AppList, &[Method::GET]),
        ["oidc", "backchannel-logout"] => (Route::BackchannelLogout, &[Method::POST]),
        ["wopi", "files", id] | ["wopi", "files", id, "contents"] if !id.is_empty() => {
            let op = Op::of_file(
                method,
                seg.len() == 4,
                header(headers, "x-wopi-override"),
                headers.contains_key("x-wopi-oldlock"),
            );
            (Route::WopiFile(op), &[Method::GET, Method::POST])
        }
        ["wopibootstrapper"] => {
            let op = Op::of_bootstrapper(method, header(headers, "x-wopi-ecosystemoperation"));
            (Route::Bootstrapper(op), &[Method::GET, Method::POST])
        }
        ["wopi", "ecosystem"] => {
            let op = if get { Op::CheckEcosystem } else { Op::Other };
            (mobile(op, T::Ecosystem), &[Method::GET, Method::POST])
        }
        ["wopi", "containers", _] => {
            let op = if get {
                Op::CheckContainerInfo
            } else {
                Op::of_container_write(header(headers, "x-wopi-override"))
            };
            (mobile(op, T::Container), &[Method::GET, Method::POST])
        }
        ["wopi", "ecosystem", "root_container_pointer"] => {
            (mobile(Op::GetRootContainer, T::Ecosystem), &[Method::GET])
        }
        ["wopi", "containers", _, "children"] => {
            (mobile(Op::EnumerateChildren, T::Container), &[Method::GET])
        }
        [
            "wopi",
            kind @ ("containers" | "files"),
            _,
            last @ ("ancestry" | "ecosystem_pointer"),
        ] => {
            let target = if *kind == "files" {
                T::File
            } else {
                T::Container
            };
            let op = if *last == "ancestry" {
                Op::EnumerateAncestors
            } else {
                Op::GetEcosystem
            };
            (mobile(op, target), &[Method::GET])
        }
        _ => return Route::NotFound,
    };
    if allowed.contains(method) {
        route
    } else {
        Route::MethodNotAllowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(method: &Method, path: &str) -> Route {
        super::classify(method, path, &HeaderMap::new())
    }

    #[test]
    fn routes() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(classify(&g, "/api/v0/wopi/open"), Route::LegacyOpen);
        assert_eq!(classify(&p, "/api/v0/wopi/open"), Route::MethodNotAllowed);
        assert_eq!(classify(&p, "/app/open"), Route::AppOpen);
        assert_eq!(classify(&g, "/app/open"), Route::MethodNotAllowed);
        assert_eq!(
            classify(&p, "/oidc/backchannel-logout"),
            Route::BackchannelLogout
        );
        assert_eq!(
            classify(&g, "/oidc/backchannel-logout"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            classify(&g, "/wopi/files/st!YWJj"),
            Route::WopiFile(WopiOperation::CheckFileInfo)
        );
        assert_eq!(
            classify(&p, "/wopi/files/st!YWJj%3D/contents"),
            Route::WopiFile(WopiOperation::PutFile)
        );
        assert_eq!(
            classify(&Method::PUT, "/wopi/files/x"),
            Route::MethodNotAllowed
        );
        assert_eq!(classify(&g, "/wopi/files/x/other"), Route::NotFound);
        assert_eq!(classify(&g, "/"), Route::NotFound);
        assert_eq!(classify(&g, "/Wopi/Files/x"), Route::NotFound);
    }

    #[test]
    fn mobile_endpoints_carry_their_operation_and_target() {
        let m = |method: &Method, path: &str| match classify(method, path) {
            Route::MobileWopi(e) => (e.operation, e.target),
            other => panic!("{path}: {other:?}"),
        };
        let g = Method::GET;
        use {Target as T, WopiOperation as Op};
        assert_eq!(m(&g, "/wopi/ecosystem"), (Op::CheckEcosystem, T::Ecosystem));
        assert_eq!(
            m(&g, "/wopi/ecosystem/root_container_pointer"),
            (Op::GetRootContainer, T::Ecosystem)
        );
        assert_eq!(
            m(&g, "/wopi/containers/x"),
            (Op::CheckContainerInfo, T::Container)
        );
        assert_eq!(
            m(&Method::POST, "/wopi/containers/x"),
            (Op::Other, T::Container)
        );
        assert_eq!(
            m(&g, "/wopi/containers/x/children"),
            (Op::EnumerateChildren, T::Container)
        );
        assert_eq!(
            m(&g, "/wopi/files/x/ancestry"),
            (Op::EnumerateAncestors, T::File)
        );
        assert_eq!(
            m(&g, "/wopi/containers/x/ecosystem_pointer"),
            (Op::GetEcosystem, T::Container)
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-wopi-ecosystemoperation",
            "GET_ROOT_CONTAINER".parse().unwrap(),
        );
        assert_eq!(
            super::classify(&Method::POST, "/wopibootstrapper", &h),
            Route::Bootstrapper(WopiOperation::GetRootContainer)
        );
        assert_eq!(
            classify(&Method::POST, "/wopi/files/x/ancestry"),
            Route::MethodNotAllowed
        );
    }

    #[test]
    fn internal_api_is_never_routed() {
        for path in [
            "/wopi/iop/openinapp",
            "/wopi/iop/open",
            "/wopi/iop/openinapp/",
            "/WOPI/IOP/openinapp",
            "/wopi/%69op/list",
            "/wopi/cbox/endpoints",
        ] {
            assert_eq!(classify(&Method::GET, path), Route::Internal, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "/wopi/files/../iop/test",
            "/wopi/files/%2e%2e/iop/list",
            "/wopi/files/..%2fiop/openinapp",
            "//wopi//iop/openinapp",
            "/wopi/./iop/list",
            "/wopi/iop%2fopeninapp",
            "/wopi/files/a%2fb",
            "/wopi/files/a%5cb",
            "/wopi/files/a%00b",
            "/wopi/files/a;x=1",
            "/wopi/files/%c0%ae",
            "wopi/files/x",
        ] {
            assert!(
                matches!(classify(&Method::GET, path), Route::BadPath(_)),
                "{path}"
            );
        }
    }
}
