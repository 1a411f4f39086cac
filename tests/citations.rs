//! Every document the code cites exists in this repository: a reader of the published
//! repository must be able to open each `wopi.md §…` a comment points at. A bare name is looked
//! up where `src/lib.rs` says (`docs/spec/`, `docs/`, the repository root, the citing file's
//! folder); a path is taken from the repository root or a folder the citing file is in. Web addresses
//! and absolute paths (install locations such as `/usr/share/doc/…`) are not citations.

use std::path::{Path, PathBuf};

/// Where the code lives: everything tracked outside these is prose or third-party.
const CODE: &[&str] = &[
    "src",
    "tests",
    "testkit",
    "benches",
    "build.rs",
    "proto",
    "conf",
    "scripts",
    "systemd",
    "packaging",
    ".ci",
];

/// Not ours to check: the OpenID provider's installed packages, pingora's own sources, and this
/// file (its examples are deliberately missing).
const SKIP: &[&str] = &["tests/idp/node_modules", "vendor", "tests/citations.rs"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let rel = dir.strip_prefix(root()).unwrap_or(dir);
    if SKIP.iter().any(|s| rel.starts_with(s)) {
        return;
    }
    if dir.is_file() {
        out.push(dir.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        files(&e.path(), out);
    }
}

/// The `….md` names in a text, with what stands before each (to tell web addresses apart).
fn cited(text: &str) -> Vec<(String, bool)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for (i, _) in text.match_indices(".md") {
        let end = i + 3;
        if text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue; // `.mdx`, `.mdl`, …
        }
        let start = text[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name(*c))
            .last()
            .map_or(i, |(j, _)| j);
        let name = &text[start..end];
        let before = &text[..start];
        let web = name.starts_with("//") || before.ends_with(':') || before.ends_with("://");
        if name.len() > 3 {
            out.push((name.to_owned(), web));
        }
    }
    out
}

fn resolves(name: &str, citing: &Path) -> bool {
    let root = root();
    let here = citing.parent().unwrap_or(&root);
    let candidates: Vec<PathBuf> = if name.contains('/') {
        // From the root, or from the citing file's folder or one above it (a crate's own
        // manifest directory, as `env!("CARGO_MANIFEST_DIR")` paths are).
        std::iter::once(root.join(name))
            .chain(
                here.ancestors()
                    .take_while(|d| d.starts_with(&root))
                    .map(|d| d.join(name)),
            )
            .collect()
    } else {
        ["docs/spec", "docs", ""]
            .iter()
            .map(|d| root.join(d).join(name))
            .chain(std::iter::once(here.join(name)))
            .collect()
    };
    candidates.iter().any(|p| p.is_file())
}

#[test]
fn every_cited_document_is_in_the_repository() {
    let mut all = Vec::new();
    for c in CODE {
        files(&root().join(c), &mut all);
    }
    assert!(all.len() > 100, "the code was found: {} files", all.len());
    let mut checked = 0;
    let mut missing = Vec::new();
    for file in &all {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // not text
        };
        for (name, web) in cited(&text) {
            if web || name.starts_with('/') {
                continue;
            }
            checked += 1;
            if !resolves(&name, file) {
                let rel = file.strip_prefix(root()).unwrap_or(file);
                missing.push(format!("{}: {name}", rel.display()));
            }
        }
    }
    assert!(checked > 100, "citations were found: {checked}");
    assert!(
        missing.is_empty(),
        "cited documents missing from the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_check_fires_on_a_missing_document_and_tells_web_addresses_apart() {
    let citing = root().join("src/lib.rs");
    let names = cited("see wopi.md §4.4, nowhere.md and https://github.com/grpc/grpc/blob/x/A.md");
    assert_eq!(
        names,
        [
            ("wopi.md".to_owned(), false),
            ("nowhere.md".to_owned(), false),
            ("//github.com/grpc/grpc/blob/x/A.md".to_owned(), true),
        ]
    );
    assert!(resolves("wopi.md", &citing));
    assert!(resolves("style.md", &citing));
    assert!(resolves("docs/benchmarks.md", &citing));
    assert!(!resolves("nowhere.md", &citing));
    assert!(!resolves("shared/spec/wopi.md", &citing));
}
