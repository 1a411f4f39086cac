//! The layering `src/lib.rs` lists holds in the code: no production code uses a module of a
//! higher layer, modules of one layer form no cycle, every top-level module has a layer, and no
//! two source files import each other (a module's `mod.rs` and the files below it aside: a child
//! may always use its parents). Production code is every line outside `#[cfg(test)]` items —
//! code after a test module counts — and grouped imports (`use crate::{a, b::c}`) are expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module → layer, from the numbered list in the crate doc.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.strip_prefix("//! ")) {
        let Some((n, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = n.parse::<usize>() else {
            continue;
        };
        let names = rest.split_once(':').map_or(rest, |(_, names)| names);
        for name in names.split('`').skip(1).step_by(2) {
            out.insert(name.to_owned(), layer);
        }
    }
    assert!(out.len() > 10, "no layering list found in lib.rs: {out:?}");
    out
}

/// The top-level modules lib.rs declares.
fn declared() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let out: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches([';', ' ', '{']).to_owned())
        .collect();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to; `None` for the crate root, binaries and
/// test-only files.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    let test_only = rel.components().any(|c| c.as_os_str() == "tests")
        || rel
            .file_name()
            .is_some_and(|f| f == "tests.rs" || f == "testing.rs");
    match name.as_str() {
        "lib" | "main" | "bin" => None,
        _ if test_only => None,
        _ => Some(name),
    }
}

/// A file's production code: its text without the `#[cfg(test)]` items (each cut at its
/// matching `}` or its `;`, braces inside strings, chars and comments not counted) and without
/// comments.
fn production(text: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        let item = &rest[i + MARK.len()..];
        rest = &item[item_end(item)..];
    }
    out.push_str(rest);
    without_comments(&out)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where a literal or comment starting at `i` ends, and whether it is a comment: strings,
/// raw (byte) strings, char literals (not lifetimes), `//` and `/* */`. `None` elsewhere.
fn literal_at(s: &str, i: usize) -> Option<(usize, bool)> {
    let b = s.as_bytes();
    let next = |n: usize| b.get(i + n).copied();
    let end_of = |from: usize, pat: &str| s[from..].find(pat).map_or(b.len(), |n| from + n);
    match b[i] {
        b'/' if next(1) == Some(b'/') => Some((end_of(i, "\n"), true)),
        b'/' if next(1) == Some(b'*') => Some(((end_of(i + 2, "*/") + 2).min(b.len()), true)),
        b'r' | b'b' if i == 0 || !is_ident(b[i - 1]) => {
            // Raw (byte) strings: r"…", r#"…"#, br#"…"#.
            let start = if b[i] == b'b' && next(1) == Some(b'r') {
                i + 2
            } else {
                i + 1
            };
            let hashes = b[start..].iter().take_while(|c| **c == b'#').count();
            let raw = b[i] == b'r' || start == i + 2;
            (raw && b.get(start + hashes) == Some(&b'"')).then(|| {
                let close = format!("\"{}", "#".repeat(hashes));
                let body = start + hashes + 1;
                ((end_of(body, &close) + close.len()).min(b.len()), false)
            })
        }
        b'"' => {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            Some(((j + 1).min(b.len()), false))
        }
        // A char literal ('x', '\n', '\''), not a lifetime.
        b'\'' if next(1) == Some(b'\\') => Some(((end_of(i + 3, "'") + 1).min(b.len()), false)),
        b'\'' if next(2) == Some(b'\'') => Some((i + 3, false)),
        _ => None,
    }
}

/// The text without its comments (doc links name modules without importing them).
fn without_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match literal_at(s, i) {
            Some((end, true)) => i = end,
            Some((end, false)) => {
                out.push_str(&s[i..end]);
                i = end;
            }
            None => {
                let c = s[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// Where the item at the start of `s` ends: after its matched `{…}`, or after its `;`.
fn item_end(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        if let Some((end, _)) = literal_at(s, i) {
            i = end;
            continue;
        }
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The paths a text names after `prefix` (`crate::`, `super::`), grouped imports expanded:
/// `crate::{a, b::{c, d}}` names `a` and `b`; each path as its `::` segments.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        if i > 0 && (is_ident(code.as_bytes()[i - 1]) || code.as_bytes()[i - 1] == b':') {
            continue; // `my_crate::`, or the second `super::` of `super::super::`
        }
        collect_paths(&code[i + prefix.len()..], Vec::new(), &mut out);
    }
    out
}

/// Reads one path (or group of paths) at the start of `s`, under `parent`.
fn collect_paths(s: &str, parent: Vec<String>, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        // Split the group's top level at commas.
        let (mut depth, mut start) = (0usize, 0);
        for (j, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    collect_paths(&group[start..j], parent.clone(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    collect_paths(&group[start..j], parent.clone(), out);
                    start = j + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let mut path = parent;
    let mut rest = s;
    loop {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        path.push(name.clone());
        rest = &rest[name.len()..];
        match rest.strip_prefix("::") {
            Some(more) if more.trim_start().starts_with('{') => {
                collect_paths(more, path, out);
                return;
            }
            Some(more) => rest = more,
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// `crate::<module>` uses in a file's production code.
fn uses(text: &str) -> BTreeSet<String> {
    paths_after(&production(text), "crate::")
        .into_iter()
        .filter_map(|p| p.into_iter().next())
        .filter(|m| m.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let Some(from) = module_of(&f) else { continue };
        let text = std::fs::read_to_string(&f).unwrap();
        let entry = out.entry(from.clone()).or_default();
        for to in uses(&text) {
            if to != from {
                entry.insert(to);
            }
        }
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let layers = layers();
    for m in declared() {
        assert!(
            layers.contains_key(&m),
            "module `{m}` is missing from lib.rs's layering"
        );
    }
}

/// Every use of a module from a layer below it.
fn upward(
    edges: &BTreeMap<String, BTreeSet<String>>,
    layers: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in edges {
        for to in tos {
            let (Some(a), Some(b)) = (layers.get(from), layers.get(to)) else {
                panic!("`{from}` uses `{to}`: both need a layer in lib.rs");
            };
            if b > a {
                out.push(format!("{from} (layer {a}) uses {to} (layer {b})"));
            }
        }
    }
    out
}

#[test]
fn no_module_uses_one_above_it() {
    let upward = upward(&edges(), &layers());
    assert!(upward.is_empty(), "upward uses:\n{}", upward.join("\n"));
}

#[test]
fn an_upward_use_below_a_test_module_in_a_grouped_import_is_caught() {
    let text = r##"
use crate::secret::Secret;

#[cfg(test)]
mod tests {
    // A brace in a string, a char and a comment must not end the test module early: }
    const JSON: &str = r#"{"a": {"b": 1}}"#;
    fn helper() -> char { let _ = "}"; '}' }
}

use crate::{ids, proxy::{Gateway, respond}};
"##;
    let used = uses(text);
    assert_eq!(
        used.iter().map(String::as_str).collect::<Vec<_>>(),
        ["ids", "proxy", "secret"]
    );
    let edges = BTreeMap::from([("tokens".to_owned(), used)]);
    let found = upward(&edges, &layers());
    assert_eq!(found, ["tokens (layer 1) uses proxy (layer 5)"]);
    // What the test module itself uses is not production code.
    assert!(!uses("#[cfg(test)]\nmod tests { use crate::proxy::Gateway; }").contains("proxy"));
}

#[test]
fn modules_of_one_layer_form_no_cycle() {
    let edges = edges();
    // Depth-first search for a path back to the start.
    fn reaches(
        edges: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        target: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(from).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) && reaches(edges, next, target, seen) {
                return true;
            }
        }
        false
    }
    for m in edges.keys() {
        assert!(
            !reaches(&edges, m, m, &mut BTreeSet::new()),
            "`{m}` is part of a dependency cycle"
        );
    }
}

/// A source file's module path: `src/proxy/conn/held.rs` is `proxy::conn::held`, a `mod.rs`
/// its folder's module.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut out: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if out.last().is_some_and(|l| l == "mod") {
        out.pop();
    }
    out
}

/// The source file a path names: the longest prefix of it that is a file of the crate.
fn file_of(path: &[String]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|n| {
        let base = src().join(path[..n].join("/"));
        [base.with_extension("rs"), base.join("mod.rs")]
            .into_iter()
            .find(|p| p.is_file())
    })
}

/// File → the files its production code imports from (`crate::…`, `super::…`, `self::…`).
fn file_edges() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = BTreeMap::new();
    for f in files.into_iter().filter(|f| module_of(f).is_some()) {
        let code = production(&std::fs::read_to_string(&f).unwrap());
        let here = module_path(&f);
        let mut targets = BTreeSet::new();
        let mut add = |path: Vec<String>| {
            if let Some(t) = file_of(&path).filter(|t| *t != f) {
                targets.insert(t);
            }
        };
        for p in paths_after(&code, "crate::") {
            add(p);
        }
        for (prefix, up) in [("super::", 1), ("self::", 0)] {
            for p in paths_after(&code, prefix) {
                let supers = p.iter().take_while(|s| *s == "super").count();
                let Some(base) = here.len().checked_sub(up + supers) else {
                    continue;
                };
                add(here[..base].iter().chain(&p[supers..]).cloned().collect());
            }
        }
        out.insert(f, targets);
    }
    out
}

#[test]
fn no_two_files_import_each_other() {
    let edges = file_edges();
    assert!(edges.len() > 50, "the files were read: {}", edges.len());
    let within = |a: &Path, b: &Path| {
        let (a, b) = (module_path(a), module_path(b));
        a.starts_with(&b) || b.starts_with(&a)
    };
    let mut circles = Vec::new();
    for (a, tos) in &edges {
        for b in tos {
            if a < b && edges.get(b).is_some_and(|back| back.contains(a)) && !within(a, b) {
                let rel = |p: &Path| p.strip_prefix(src()).unwrap().display().to_string();
                circles.push(format!("{} <-> {}", rel(a), rel(b)));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files importing each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn file_imports_resolve_grouped_and_relative_paths() {
    let held = src().join("proxy/conn/held.rs");
    assert_eq!(module_path(&held), ["proxy", "conn", "held"]);
    assert_eq!(
        module_path(&src().join("proxy/conn/mod.rs")),
        ["proxy", "conn"]
    );
    let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        file_of(&path("proxy::conn::stream::LimitedStream")),
        Some(src().join("proxy/conn/stream.rs"))
    );
    assert_eq!(
        file_of(&path("proxy::Gateway")),
        Some(src().join("proxy/mod.rs"))
    );
    assert_eq!(
        paths_after("use super::{stream::LimitedStream, cork::Cork};", "super::"),
        [path("stream::LimitedStream"), path("cork::Cork")]
    );
    assert_eq!(
        paths_after("use super::super::deadline::PAST_HEAD;", "super::"),
        [path("super::deadline::PAST_HEAD")]
    );
}

/// Longest production file, in lines outside `#[cfg(test)]` items.
const MAX_FILE_LINES: usize = 450;
/// Longest function, signature to closing brace.
const MAX_FN_LINES: usize = 80;
/// Declarative tables, exempt from the function limit: the metric definitions and the URL
/// table (file, function).
const TABLES: &[(&str, &str)] = &[("metrics.rs", "new"), ("wopi/route.rs", "classify")];

/// Functions in production code that run longer than `MAX_FN_LINES`: (name, lines).
fn long_functions(prod: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in prod.split_inclusive('\n') {
        let words: Vec<&str> = line.split_whitespace().collect();
        let fn_at = words.iter().position(|w| *w == "fn");
        let qualifiers = [
            "pub",
            "pub(crate)",
            "pub(super)",
            "const",
            "async",
            "unsafe",
        ];
        if let Some(i) = fn_at
            && words[..i].iter().all(|w| qualifiers.contains(w))
            && let Some(name) = words.get(i + 1)
        {
            let body = &prod[at..];
            let lines = body[..item_end(body)].lines().count();
            if lines > MAX_FN_LINES {
                let name = name.split(['(', '<']).next().unwrap_or_default();
                out.push((name.to_owned(), lines));
            }
        }
        at += line.len();
    }
    out
}

#[test]
fn no_production_file_or_function_is_too_long() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut over = Vec::new();
    for file in files.iter().filter(|f| module_of(f).is_some()) {
        let rel = file
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let prod = production(&std::fs::read_to_string(file).unwrap());
        let lines = prod.trim_end().lines().count();
        if lines > MAX_FILE_LINES {
            over.push(format!("{rel}: {lines} lines"));
        }
        for (name, lines) in long_functions(&prod) {
            if !TABLES.contains(&(rel.as_str(), name.as_str())) {
                over.push(format!("{rel}: fn {name}, {lines} lines"));
            }
        }
    }
    assert!(over.is_empty(), "too long:\n{}", over.join("\n"));
}

#[test]
fn a_long_function_is_found_and_a_short_one_is_not() {
    let long = format!(
        "pub async fn long(a: u8) -> u8 {{\n{}    a\n}}\nfn short() {{}}\n",
        "    let _ = 1;\n".repeat(MAX_FN_LINES)
    );
    assert_eq!(
        long_functions(&production(&long)),
        vec![("long".to_owned(), MAX_FN_LINES + 3)]
    );
}
