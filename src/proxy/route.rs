//! Classifies a request on the public listener. Decisions are made on a strictly validated path:
//! anything that could be read two ways (encoded slashes, dot segments, backslashes, NUL) is
//! refused rather than normalised (security.md §3.2).

use http::Method;
use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v0/wopi/open`
    LegacyOpen,
    /// `POST /app/open`
    AppOpen,
    /// `GET /app/list`
    AppList,
    /// `/wopi/files/<id>[/contents]`, proxied to the wopiserver.
    WopiFile,
    /// `/wopibootstrapper` (Office for iOS/Android, OAuth-authenticated).
    Bootstrapper,
    /// Ecosystem, container, and file ancestry/ecosystem endpoints served from REVA.
    MobileWopi,
    /// `/wopi/iop/*`, `/wopi/cbox/*`: internal only, never served here.
    Internal,
    NotFound,
    MethodNotAllowed,
    BadPath(&'static str),
}

impl Route {
    /// Closed label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::LegacyOpen => "legacy_open",
            Self::AppOpen => "app_open",
            Self::AppList => "app_list",
            Self::WopiFile => "wopi_file",
            Self::Bootstrapper => "bootstrapper",
            Self::MobileWopi => "mobile_wopi",
            Self::Internal => "internal",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadPath(_) => "bad_path",
        }
    }
}

/// Longest path accepted.
const MAX_PATH: usize = 4096;

pub fn classify(method: &Method, path: &str) -> Route {
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
    let (route, allowed): (Route, &[Method]) = match seg.as_slice() {
        ["api", "v0", "wopi", "open"] => (Route::LegacyOpen, &[Method::GET]),
        ["app", "open"] => (Route::AppOpen, &[Method::POST]),
        ["app", "list"] => (Route::AppList, &[Method::GET]),
        ["wopi", "files", id] | ["wopi", "files", id, "contents"] if !id.is_empty() => {
            (Route::WopiFile, &[Method::GET, Method::POST])
        }
        ["wopibootstrapper"] => (Route::Bootstrapper, &[Method::GET, Method::POST]),
        ["wopi", "ecosystem"] | ["wopi", "containers", _] => {
            (Route::MobileWopi, &[Method::GET, Method::POST])
        }
        ["wopi", "ecosystem", "root_container_pointer"]
        | [
            "wopi",
            "containers",
            _,
            "children" | "ancestry" | "ecosystem_pointer",
        ]
        | ["wopi", "files", _, "ancestry" | "ecosystem_pointer"] => {
            (Route::MobileWopi, &[Method::GET])
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

    #[test]
    fn routes() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(classify(&g, "/api/v0/wopi/open"), Route::LegacyOpen);
        assert_eq!(classify(&p, "/api/v0/wopi/open"), Route::MethodNotAllowed);
        assert_eq!(classify(&p, "/app/open"), Route::AppOpen);
        assert_eq!(classify(&g, "/app/open"), Route::MethodNotAllowed);
        assert_eq!(classify(&g, "/wopi/files/st!YWJj"), Route::WopiFile);
        assert_eq!(
            classify(&p, "/wopi/files/st!YWJj%3D/contents"),
            Route::WopiFile
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
