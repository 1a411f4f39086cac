//! `GET /app/list`: what can open what, in the shape of REVA's app-provider listing
//! (`{"mime-types": [{mime_type, ext, name, default_application, allow_creation,
//! app_providers: [{name, icon, modes}]}]}`), built from the discovery cache. It is the one answer
//! to "which extensions, by which app, in which modes".

use std::collections::BTreeMap;

use serde::Serialize;

use crate::discovery::DiscoveryCache;

/// Office extensions and their MIME types. Extensions outside this table are still openable but
/// are not listed (a listing is keyed by MIME type).
const MIME_TYPES: &[(&str, &str, &str)] = &[
    (
        ".docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Word document",
    ),
    (
        ".dotx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
        "Word template",
    ),
    (".doc", "application/msword", "Word 97-2003 document"),
    (
        ".xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Excel spreadsheet",
    ),
    (
        ".xltx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.template",
        "Excel template",
    ),
    (
        ".xls",
        "application/vnd.ms-excel",
        "Excel 97-2003 spreadsheet",
    ),
    (
        ".pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "PowerPoint presentation",
    ),
    (
        ".potx",
        "application/vnd.openxmlformats-officedocument.presentationml.template",
        "PowerPoint template",
    ),
    (
        ".ppt",
        "application/vnd.ms-powerpoint",
        "PowerPoint 97-2003 presentation",
    ),
    (
        ".odt",
        "application/vnd.oasis.opendocument.text",
        "OpenDocument text",
    ),
    (
        ".ott",
        "application/vnd.oasis.opendocument.text-template",
        "OpenDocument text template",
    ),
    (
        ".ods",
        "application/vnd.oasis.opendocument.spreadsheet",
        "OpenDocument spreadsheet",
    ),
    (
        ".ots",
        "application/vnd.oasis.opendocument.spreadsheet-template",
        "OpenDocument spreadsheet template",
    ),
    (
        ".odp",
        "application/vnd.oasis.opendocument.presentation",
        "OpenDocument presentation",
    ),
    (
        ".otp",
        "application/vnd.oasis.opendocument.presentation-template",
        "OpenDocument presentation template",
    ),
    (
        ".odg",
        "application/vnd.oasis.opendocument.graphics",
        "OpenDocument drawing",
    ),
    (".rtf", "application/rtf", "Rich text document"),
    (".csv", "text/csv", "CSV file"),
    (".txt", "text/plain", "Text file"),
    (".md", "text/markdown", "Markdown file"),
    (".pdf", "application/pdf", "PDF document"),
    (".vsdx", "application/vnd.ms-visio.drawing", "Visio drawing"),
];

#[derive(Serialize)]
struct Provider {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<String>,
    /// `view`, `edit`, `new`: what this app offers for the type.
    modes: Vec<&'static str>,
}

#[derive(Serialize)]
struct MimeType {
    mime_type: &'static str,
    ext: String,
    name: &'static str,
    default_application: String,
    allow_creation: bool,
    app_providers: Vec<Provider>,
}

#[derive(Serialize)]
struct Listing {
    #[serde(rename = "mime-types")]
    mime_types: Vec<MimeType>,
}

pub async fn app_list(discovery: &DiscoveryCache) -> Vec<u8> {
    let loaded = discovery.loaded().await;
    let mut by_ext: BTreeMap<&str, MimeType> = BTreeMap::new();
    for &(ext, mime, name) in MIME_TYPES {
        for (app, d) in &loaded {
            let Some(urls) = d.extensions.get(ext) else {
                continue;
            };
            let mut modes = Vec::new();
            if urls.view.is_some() || urls.edit.is_some() {
                modes.push("view");
            }
            if urls.edit.is_some() {
                modes.push("edit");
            }
            if urls.editnew.is_some() {
                modes.push("new");
            }
            let icon = d
                .apps
                .iter()
                .find(|a| a.name == urls.discovery_app)
                .and_then(|a| a.fav_icon_url.clone());
            let entry = by_ext.entry(ext).or_insert_with(|| MimeType {
                mime_type: mime,
                ext: ext.trim_start_matches('.').to_owned(),
                name,
                default_application: String::new(),
                allow_creation: false,
                app_providers: Vec::new(),
            });
            entry.allow_creation |= urls.editnew.is_some() || urls.edit.is_some();
            entry.app_providers.push(Provider {
                name: app.clone(),
                icon,
                modes,
            });
        }
    }
    let mut mime_types = Vec::new();
    for (ext, mut m) in by_ext {
        // The app the open API would choose by default.
        m.default_application = discovery.default_app(ext).await.unwrap_or_default();
        mime_types.push(m);
    }
    serde_json::to_vec(&Listing { mime_types }).unwrap_or_default()
}
