//! File and folder names from office apps (wopi.md §4.4, §5.4–§5.6, §11): which decoded names
//! may reach REVA, what a suggested name becomes, and how a taken name is made unique. A
//! suggested name is never refused (it is adjusted); an exact (relative) name is taken as it
//! is or refused.

use crate::pb::cs3::storage::provider::v1beta1::ResourceInfo;

/// A resource's name as REVA reports it: `name`, else the last segment of `path` (an
/// id-based Stat may leave `name` empty).
pub fn of(info: &ResourceInfo) -> &str {
    if info.name.is_empty() {
        info.path.rsplit('/').next().unwrap_or_default()
    } else {
        &info.name
    }
}

/// Longest name, in characters, without the extension (`FileNameMaxLength`'s default).
pub const MAX_STEM_CHARS: usize = 250;

/// Characters no name may hold: path separators, what Windows and iOS refuse, controls.
fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
}

/// Whether `name` may be used as it is: not empty, no forbidden character, not `.`/`..`, no
/// leading or trailing space, no trailing dot, not too long.
pub fn is_legal(name: &str) -> bool {
    let (stem, _) = split_ext(name);
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.chars().any(forbidden)
        && !name.starts_with(' ')
        && !name.ends_with([' ', '.'])
        && stem.chars().count() <= MAX_STEM_CHARS
        && name.len() <= 1024
}

/// `("report", ".docx")`; a name without a dot (or only a leading one) has no extension.
pub fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// A legal name made from anything: forbidden characters become `_`, edges trimmed, the
/// stem shortened; an empty stem becomes `default_stem` (itself made legal, else
/// "New document").
pub fn legalise(name: &str, default_stem: &str) -> String {
    fn parts(name: &str) -> (String, String) {
        let cleaned: String = name
            .chars()
            .map(|c| if forbidden(c) { '_' } else { c })
            .collect();
        let cleaned = cleaned.trim_matches(|c: char| c == ' ' || c == '.');
        let (stem, ext) = split_ext(cleaned);
        let ext = ext.trim_end_matches([' ', '.']).to_owned();
        let stem: String = stem.trim().chars().take(MAX_STEM_CHARS).collect();
        (stem, ext)
    }
    let (stem, ext) = parts(name);
    let stem = if stem.is_empty() || stem == "." {
        let (fallback, fallback_ext) = parts(default_stem);
        match format!("{fallback}{fallback_ext}") {
            f if f.is_empty() || f == "." => "New document".to_owned(),
            f => f.chars().take(MAX_STEM_CHARS).collect(),
        }
    } else {
        stem
    };
    format!("{stem}{ext}")
}

/// What `X-WOPI-SuggestedTarget` asks for: `.ext` alone is `base`'s stem with that extension,
/// anything else a full name; made legal either way.
pub fn suggested(target: &str, base: &str) -> String {
    // The base name comes from outside too: made legal before use.
    let stem = legalise(split_ext(base).0, "New document");
    if target.starts_with('.') && !target[1..].contains('.') && target.len() > 1 {
        legalise(&format!("{stem}{target}"), &stem)
    } else {
        legalise(target, &stem)
    }
}

/// `name`, or `stem (2).ext`, `stem (3).ext`, … : the first that `taken` says is free.
/// `None` only after `limit` tries.
pub fn unique(name: &str, limit: usize, taken: impl Fn(&str) -> bool) -> Option<String> {
    if !taken(name) {
        return Some(name.to_owned());
    }
    let (stem, ext) = split_ext(name);
    (2..limit + 2)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !taken(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_are_checked() {
        for ok in ["report.docx", "Résumé 2.docx", "a", ".hidden", "x (2).odt"] {
            assert!(is_legal(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b.docx",
            "a\\b",
            "c:d",
            "what?.docx",
            "tab\there",
            " lead",
            "trail ",
            "dot.",
            "x\u{0}y",
        ] {
            assert!(!is_legal(bad), "{bad:?}");
        }
        assert!(!is_legal(&format!("{}.docx", "a".repeat(251))));
        assert!(is_legal(&format!("{}.docx", "a".repeat(250))));
    }

    #[test]
    fn suggestions_are_adjusted_never_refused() {
        assert_eq!(suggested(".pdf", "report.docx"), "report.pdf");
        assert_eq!(
            suggested("Copy of report.docx", "report.docx"),
            "Copy of report.docx"
        );
        assert_eq!(suggested("a/b:c.docx", "report.docx"), "a_b_c.docx");
        assert_eq!(suggested("...", "report.docx"), "report");
        assert_eq!(suggested(".docx", ""), "New document.docx");
        for s in [".pdf", "x?y", "..", "/", " . ", "a".repeat(400).as_str()] {
            assert!(is_legal(&suggested(s, "report.docx")), "{s:?}");
        }
    }

    #[test]
    fn taken_names_get_a_number() {
        let taken = ["report.docx", "report (2).docx"];
        assert_eq!(
            unique("report.docx", 10, |n| taken.contains(&n)).as_deref(),
            Some("report (3).docx")
        );
        assert_eq!(unique("new.odt", 10, |_| false).as_deref(), Some("new.odt"));
        assert_eq!(unique("x", 3, |_| true), None);
    }
}
