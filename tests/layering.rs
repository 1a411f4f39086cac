//! The layering `src/lib.rs` lists holds in the code: no production code uses a module of a
//! higher layer, modules of one layer form no cycle, and every top-level module has a layer.

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

/// The top-level modules lib.rs declares (testkit aside).
fn declared() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches([';', ' ', '{']).to_owned())
        .collect();
    out.remove("testkit");
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
        "lib" | "main" | "bin" | "testkit" => None,
        _ if test_only => None,
        _ => Some(name),
    }
}

/// `crate::<module>` uses in a file's production code (before its `#[cfg(test)]` part).
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
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

#[test]
fn no_module_uses_one_above_it() {
    let layers = layers();
    let mut upward = Vec::new();
    for (from, tos) in edges() {
        for to in tos {
            let (Some(a), Some(b)) = (layers.get(&from), layers.get(&to)) else {
                panic!("`{from}` uses `{to}`: both need a layer in lib.rs");
            };
            if b > a {
                upward.push(format!("{from} (layer {a}) uses {to} (layer {b})"));
            }
        }
    }
    assert!(upward.is_empty(), "upward uses:\n{}", upward.join("\n"));
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
