//! The view modes a file is opened with (CS3 `ViewMode`, the wopiserver's `viewmode`): what a
//! token lets its holder do with the file, named once for every layer above.

/// The wopiserver's view modes (`VIEW_MODE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewMode {
    ViewOnly,
    ReadOnly,
    ReadWrite,
    Preview,
    Embedded,
}

impl ViewMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ViewOnly => "VIEW_MODE_VIEW_ONLY",
            Self::ReadOnly => "VIEW_MODE_READ_ONLY",
            Self::ReadWrite => "VIEW_MODE_READ_WRITE",
            Self::Preview => "VIEW_MODE_PREVIEW",
            Self::Embedded => "VIEW_MODE_EMBEDDED",
        }
    }

    /// Accepts the CS3 names and REVA's `/app/open` short forms (`view`, `read`, `write`,
    /// `preview`, `embedded`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "VIEW_MODE_VIEW_ONLY" | "view" => Self::ViewOnly,
            "VIEW_MODE_READ_ONLY" | "read" => Self::ReadOnly,
            "VIEW_MODE_READ_WRITE" | "write" => Self::ReadWrite,
            "VIEW_MODE_PREVIEW" | "preview" => Self::Preview,
            "VIEW_MODE_EMBEDDED" | "embedded" => Self::Embedded,
            _ => return None,
        })
    }
}
