//! The two open APIs' requests and answers: `GET /api/v0/wopi/open` (legacy, query parameters
//! in camelCase, cs3-wopiserver.md §13) and REVA's `POST /app/open` (snake_case, query or form
//! body, §14). Both end in the same [`super::OpenService::open`].

use super::{OpenRequest, OpenResult};
use crate::error::{ApiError, ErrorCode};
use crate::wopi::ViewMode;

/// Which open API a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenApi {
    Legacy,
    AppOpen,
}

/// What the caller asked to open, parsed from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenParams {
    pub file_id: String,
    pub app_name: Option<String>,
    pub view_mode: Option<ViewMode>,
}

impl OpenApi {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::AppOpen => "app_open",
        }
    }

    /// Whether the parameters may also come in a form body (`POST /app/open`).
    pub fn reads_form(self) -> bool {
        self == Self::AppOpen
    }

    /// The parameters from the query string and, for `/app/open`, the form body; the first
    /// occurrence of a name wins, the query before the form.
    pub fn params(self, query: Option<&str>, form: &[u8]) -> Result<OpenParams, ApiError> {
        let (file_key, app_key, mode_key) = match self {
            Self::Legacy => ("fileId", "appName", "viewMode"),
            Self::AppOpen => ("file_id", "app_name", "view_mode"),
        };
        let query = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        let form = url::form_urlencoded::parse(if self.reads_form() { form } else { b"" });
        let (mut file_id, mut app_name, mut mode) = (None, None, None);
        for (k, v) in query.chain(form) {
            let slot = match &*k {
                k if k == file_key => &mut file_id,
                k if k == app_key => &mut app_name,
                k if k == mode_key => &mut mode,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        let file_id = file_id.ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("{file_key} parameter missing"),
            )
        })?;
        let view_mode = match mode.filter(|m| !m.is_empty()) {
            Some(m) => Some(ViewMode::parse(&m).ok_or_else(|| {
                ApiError::new(ErrorCode::BadRequest, format!("invalid {mode_key}"))
            })?),
            None => None,
        };
        Ok(OpenParams {
            file_id,
            app_name: app_name.filter(|a| !a.is_empty()),
            view_mode,
        })
    }

    /// The answer in this API's shape.
    pub fn answer(self, result: &OpenResult) -> Vec<u8> {
        match self {
            Self::Legacy => result.legacy_json(),
            Self::AppOpen => result.app_open_json(),
        }
    }
}

impl OpenParams {
    /// The open request for these parameters.
    pub fn request<'a>(&'a self, bearer: &'a str, trace_id: &'a str) -> OpenRequest<'a> {
        OpenRequest {
            bearer,
            file_id: &self.file_id,
            app_name: self.app_name.as_deref(),
            view_mode: self.view_mode,
            trace_id,
        }
    }
}

/// Records the outcome of an open on its metrics.
pub fn count(api: OpenApi, outcome: Result<&OpenResult, &ApiError>) {
    let m = crate::metrics::metrics();
    match outcome {
        Ok(r) => m
            .opens
            .with_label_values(&[api.label(), &r.app_name, r.view_mode.as_str()])
            .inc(),
        Err(e) => m
            .open_failures
            .with_label_values(&[api.label(), e.code.as_str()])
            .inc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_reads_its_own_names() {
        let p = OpenApi::Legacy
            .params(
                Some("fileId=abc&appName=Collabora&viewMode=VIEW_MODE_READ_ONLY"),
                b"",
            )
            .unwrap();
        assert_eq!(p.file_id, "abc");
        assert_eq!(p.app_name.as_deref(), Some("Collabora"));
        assert_eq!(p.view_mode, ViewMode::parse("VIEW_MODE_READ_ONLY"));
        let e = OpenApi::Legacy
            .params(Some("file_id=abc"), b"")
            .unwrap_err();
        assert_eq!(e.message, "fileId parameter missing");
        // The legacy API never reads a body.
        assert!(OpenApi::Legacy.params(None, b"fileId=abc").is_err());
    }

    #[test]
    fn app_open_reads_query_then_form() {
        let p = OpenApi::AppOpen
            .params(Some("file_id=q"), b"file_id=f&app_name=&view_mode=")
            .unwrap();
        assert_eq!(p.file_id, "q", "the query wins");
        assert_eq!(p.app_name, None, "an empty app name is no app name");
        assert_eq!(p.view_mode, None);
        let p = OpenApi::AppOpen.params(None, b"file_id=f%21x").unwrap();
        assert_eq!(p.file_id, "f!x");
        let e = OpenApi::AppOpen
            .params(None, b"file_id=f&view_mode=sideways")
            .unwrap_err();
        assert_eq!(e.message, "invalid view_mode");
    }
}
