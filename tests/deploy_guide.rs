//! `docs/deploy.md` shows real configuration: its first TOML block is a complete configuration
//! that `wopigate check` accepts, and every later block, merged into it, passes too. Secrets
//! and certificates the snippets name as systemd credentials are made from the test fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn toml_blocks() -> Vec<String> {
    let guide = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    guide
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_owned())
        .collect()
}

/// A snippet's section replaces the configuration's, unless it holds only sub-tables
/// (`[oidc.tls]`): those are set within the existing section.
fn merged(base: &toml::Table, snippet: &toml::Table) -> toml::Table {
    let mut out = base.clone();
    for (section, value) in snippet {
        match (out.get_mut(section), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(new))
                if new.values().all(toml::Value::is_table) =>
            {
                existing.extend(new.clone());
            }
            _ => {
                out.insert(section.clone(), value.clone());
            }
        }
    }
    out
}

/// Every `$CREDENTIALS_DIRECTORY/<name>` a configuration names, made in `dir`: certificates
/// and keys from the TLS fixtures, anything else a random secret.
fn credentials(text: &str, dir: &Path) {
    let fixture = |name: &str| root().join("tests/fixtures/tls").join(name);
    for (i, _) in text.match_indices("$CREDENTIALS_DIRECTORY/") {
        let name: String = text[i + "$CREDENTIALS_DIRECTORY/".len()..]
            .chars()
            .take_while(|c| !matches!(c, '"' | '\''))
            .collect();
        let target = dir.join(&name);
        let source: Option<PathBuf> = match name.as_str() {
            n if n.contains("ca") && n.ends_with(".pem") => Some(fixture("ca.pem")),
            n if n.contains("client") && n.ends_with(".crt") => Some(fixture("client.pem")),
            n if n.contains("client") && n.ends_with(".key") => Some(fixture("client.key")),
            n if n.ends_with(".crt") => Some(fixture("server.pem")),
            n if n.ends_with(".key") => Some(fixture("server.key")),
            _ => None,
        };
        match source {
            Some(s) => std::fs::copy(s, &target).map(drop).unwrap(),
            None => {
                std::fs::write(&target, format!("{name}-test-secret-0123456789abcdef\n")).unwrap()
            }
        }
    }
}

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    credentials(text, dir.path());
    let config = dir.path().join("wopigate.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wopigate"))
        .args(["check", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_guide_configuration_passes_wopigate_check() {
    let blocks = toml_blocks();
    assert!(blocks.len() >= 6, "{} TOML blocks", blocks.len());
    let (ok, out) = check(&blocks[0]);
    assert!(ok, "the complete configuration of docs/deploy.md:\n{out}");
    assert!(out.contains("public listener: https://"), "{out}");
}

#[test]
fn every_snippet_of_the_guide_passes_wopigate_check() {
    let blocks = toml_blocks();
    let base: toml::Table = toml::from_str(&blocks[0]).unwrap();
    for snippet in &blocks[1..] {
        let table: toml::Table =
            toml::from_str(snippet).unwrap_or_else(|e| panic!("not TOML: {e}\n{snippet}"));
        let text = toml::to_string(&merged(&base, &table)).unwrap();
        let (ok, out) = check(&text);
        assert!(
            ok,
            "snippet:\n{snippet}\nmerged:\n{text}\nwopigate check:\n{out}"
        );
    }
}
