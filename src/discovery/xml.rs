//! Parses `/hosting/discovery` (wopi.md §9.2–§9.3) into extension → action URLs, plus the
//! `<proof-key>` element for proof validation. Lenient about unknown elements and attributes,
//! strict about size.

use crate::wopi::proof::ProofKeyXml;
use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Actions the open flow uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionUrls {
    pub view: Option<String>,
    pub edit: Option<String>,
    pub editnew: Option<String>,
    pub embedview: Option<String>,
    /// The discovery `<app>` the actions came from (e.g. `Word`), for names and icons.
    pub discovery_app: String,
}

/// An `<app>` with its icon, for app listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredApp {
    pub name: String,
    pub fav_icon_url: Option<String>,
}

/// One office app's parsed discovery.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Keyed by dotted, lower-case extension (`.docx`).
    pub extensions: HashMap<String, ActionUrls>,
    pub apps: Vec<DiscoveredApp>,
    pub proof_key: Option<ProofKeyXml>,
    /// `proof_key` as usable public keys; `None` when absent or malformed.
    pub proof_keys: Option<std::sync::Arc<crate::wopi::proof::ProofKeys>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryParseError {
    #[error("malformed discovery XML: {0}")]
    Xml(String),
    #[error("discovery XML has no usable action")]
    Empty,
}

fn attrs(e: &BytesStart<'_>) -> HashMap<String, String> {
    e.attributes()
        .flatten()
        .filter_map(|a| {
            let key = String::from_utf8(a.key.as_ref().to_vec()).ok()?;
            let value = a.unescape_value().ok()?.into_owned();
            Some((key, value))
        })
        .collect()
}

/// The wopiserver appends `WOPISrc` itself, so placeholders are not kept: resolves `UI_LLCC`
/// and `DC_LLCC` to `language` (keeping `name=` and a trailing `&`) and
/// removes every other placeholder segment, unknown ones included (wopi.md §9.4).
pub fn resolve_placeholders(urlsrc: &str, language: Option<&str>) -> Option<String> {
    let mut out = String::with_capacity(urlsrc.len());
    let mut rest = urlsrc;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('>')?;
        let inner = &rest[start + 1..start + end];
        if let (Some(lang), Some((name, value))) = (language, inner.split_once('=')) {
            let (value, amp) = value.strip_suffix('&').map_or((value, ""), |v| (v, "&"));
            if matches!(value, "UI_LLCC" | "DC_LLCC") {
                let lang: String = url::form_urlencoded::byte_serialize(lang.as_bytes()).collect();
                out.push_str(&format!("{name}={lang}{amp}"));
            }
        }
        rest = &rest[start + end + 1..];
    }
    if rest.contains('>') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// (action name, ext, urlsrc, discovery app) as read from one `<net-zone>`.
type ZoneAction = (String, String, String, String);

pub fn parse(xml: &str) -> Result<Discovery, DiscoveryParseError> {
    parse_with(xml, None, None)
}

/// Everything the document lists, before a zone is chosen.
#[derive(Default)]
struct Document {
    /// net-zone name → its actions.
    zones: Vec<(String, Vec<ZoneAction>)>,
    /// (zone index, app): icons and names are taken from the chosen zone only.
    apps: Vec<(usize, DiscoveredApp)>,
    proof_key: Option<ProofKeyXml>,
}

fn read_document(xml: &str) -> Result<Document, DiscoveryParseError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut doc = Document::default();
    let mut current_app = String::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| DiscoveryParseError::Xml(e.to_string()))?;
        let e = match event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => return Ok(doc),
            _ => continue,
        };
        let mut a = attrs(&e);
        match e.local_name().as_ref() {
            b"net-zone" => doc
                .zones
                .push((a.remove("name").unwrap_or_default(), Vec::new())),
            b"app" => {
                let name = a.remove("name").unwrap_or_default();
                current_app.clone_from(&name);
                let zone = doc.zones.len().saturating_sub(1);
                if !doc.apps.iter().any(|(z, x)| *z == zone && x.name == name) {
                    let fav_icon_url = a.remove("favIconUrl").filter(|u| !u.is_empty());
                    doc.apps.push((zone, DiscoveredApp { name, fav_icon_url }));
                }
            }
            b"action" => {
                if let (Some(name), Some(ext), Some(url), Some(zone)) = (
                    a.remove("name"),
                    a.remove("ext"),
                    a.remove("urlsrc"),
                    doc.zones.last_mut(),
                ) {
                    zone.1.push((name, ext, url, current_app.clone()));
                }
            }
            b"proof-key" => {
                let mut take = |k: &str| a.remove(k).unwrap_or_default();
                doc.proof_key = Some(ProofKeyXml {
                    value: take("value"),
                    modulus: take("modulus"),
                    exponent: take("exponent"),
                    oldvalue: take("oldvalue"),
                    oldmodulus: take("oldmodulus"),
                    oldexponent: take("oldexponent"),
                });
            }
            _ => {}
        }
    }
}

/// REVA's and oCIS's rule: the zone whose name contains "external"; a discovery without one
/// (internal-only deployments) falls back to its first zone.
fn chosen_zone(zones: &[(String, Vec<ZoneAction>)], net_zone: Option<&str>) -> Option<usize> {
    match net_zone {
        Some(wanted) => zones.iter().position(|(name, _)| name == wanted),
        None => zones
            .iter()
            .position(|(name, _)| name.contains("external"))
            .or(if zones.is_empty() { None } else { Some(0) }),
    }
}

/// Extension → app URLs, from one zone's actions; the first action of a kind wins, as in
/// document order of preference.
fn extensions_of(actions: &[ZoneAction], language: Option<&str>) -> HashMap<String, ActionUrls> {
    let mut extensions: HashMap<String, ActionUrls> = HashMap::new();
    for (action, ext, urlsrc, app) in actions {
        if ext.is_empty() || urlsrc.is_empty() {
            continue;
        }
        let Some(url) = resolve_placeholders(urlsrc, language) else {
            continue;
        };
        let entry = extensions
            .entry(format!(".{}", ext.to_ascii_lowercase()))
            .or_default();
        if entry.discovery_app.is_empty() {
            entry.discovery_app.clone_from(app);
        }
        let slot = match action.as_str() {
            "view" => &mut entry.view,
            "edit" => &mut entry.edit,
            "editnew" => &mut entry.editnew,
            "embedview" => &mut entry.embedview,
            _ => continue,
        };
        slot.get_or_insert(url);
    }
    extensions.retain(|_, a| a.view.is_some() || a.edit.is_some());
    extensions
}

/// Parses with a chosen `<net-zone>` (default: `external…`, else the first) and a UI language
/// for placeholders.
pub fn parse_with(
    xml: &str,
    net_zone: Option<&str>,
    language: Option<&str>,
) -> Result<Discovery, DiscoveryParseError> {
    let doc = read_document(xml)?;
    let chosen = chosen_zone(&doc.zones, net_zone);
    let apps: Vec<DiscoveredApp> = doc
        .apps
        .into_iter()
        .filter(|(z, _)| Some(*z) == chosen)
        .map(|(_, a)| a)
        .collect();
    let actions = chosen
        .map(|i| doc.zones[i].1.as_slice())
        .unwrap_or_default();
    let extensions = extensions_of(actions, language);
    if extensions.is_empty() {
        return Err(DiscoveryParseError::Empty);
    }
    let proof_keys = doc
        .proof_key
        .as_ref()
        .and_then(|x| crate::wopi::proof::ProofKeys::from_discovery(x).ok())
        .map(std::sync::Arc::new);
    Ok(Discovery {
        extensions,
        apps,
        proof_key: doc.proof_key,
        proof_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: &str = include_str!("../../tests/fixtures/discovery/microsoft.xml");
    const COLLABORA: &str = include_str!("../../tests/fixtures/discovery/collabora.xml");

    #[test]
    fn placeholders_are_removed() {
        assert_eq!(
            resolve_placeholders(
                "https://x/we.aspx?<ui=UI_LLCC&><rs=DC_LLCC&><wopisrc=WOPI_SOURCE&>",
                None
            )
            .as_deref(),
            Some("https://x/we.aspx?")
        );
        assert_eq!(
            resolve_placeholders("https://c/cool.html?", None).as_deref(),
            Some("https://c/cool.html?")
        );
        assert_eq!(resolve_placeholders("https://x/a?<ui=UI_LLCC&", None), None);
        assert_eq!(resolve_placeholders("https://x/a?ui=>", None), None);
    }

    #[test]
    fn language_placeholders_are_resolved_and_zones_chosen() {
        assert_eq!(
            resolve_placeholders("https://x/we.aspx?<ui=UI_LLCC&><rs=DC_LLCC&><dchat=DISABLE_CHAT&><wopisrc=WOPI_SOURCE&>", Some("de-DE")).as_deref(),
            Some("https://x/we.aspx?ui=de-DE&rs=de-DE&")
        );
        let d = parse_with(MS, None, Some("en-US")).unwrap();
        assert_eq!(
            d.extensions[".docx"].view.as_deref(),
            Some("https://word-view.example.net/wv/wordviewerframe.aspx?ui=en-US&rs=en-US&")
        );
        let internal = parse_with(MS, Some("internal-https"), None).unwrap();
        assert_eq!(
            internal.extensions[".docx"].view.as_deref(),
            Some("https://internal.example.net/wv/wordviewerframe.aspx?")
        );
        assert!(parse_with(MS, Some("no-such-zone"), None).is_err());
    }

    #[test]
    fn microsoft_discovery_maps_actions_and_keeps_proof_key() {
        let d = parse(MS).unwrap();
        let docx = &d.extensions[".docx"];
        assert_eq!(
            docx.view.as_deref(),
            Some("https://word-view.example.net/wv/wordviewerframe.aspx?")
        );
        assert_eq!(
            docx.edit.as_deref(),
            Some("https://word-edit.example.net/we/wordeditorframe.aspx?")
        );
        assert_eq!(
            docx.editnew.as_deref(),
            Some("https://word-edit.example.net/we/wordeditorframe.aspx?new=1&")
        );
        // internal zone ignored
        assert!(
            !d.extensions[".docx"]
                .view
                .as_deref()
                .unwrap()
                .contains("internal")
        );
        let pk = d.proof_key.unwrap();
        assert!(pk.modulus.starts_with("tloDW64n"));
        assert_eq!(pk.exponent, "AQAB");
        assert!(
            d.apps
                .iter()
                .any(|a| a.name == "Word" && a.fav_icon_url.is_some())
        );
    }

    #[test]
    fn collabora_discovery_has_edit_for_many_types() {
        let d = parse(COLLABORA).unwrap();
        assert!(
            d.extensions[".odt"]
                .edit
                .as_deref()
                .unwrap()
                .ends_with("cool.html?")
        );
        assert!(d.extensions.contains_key(".ods"));
        assert!(d.proof_key.is_none());
        // upper-case ext in XML is normalised
        assert!(d.extensions.contains_key(".docx"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("<wopi-discovery><net-zone>").is_err());
        assert!(parse("not xml at all").is_err());
        assert!(parse("<wopi-discovery></wopi-discovery>").is_err());
    }
}
