//! Configuration in three layers (style.md principle 5): CLI → [`file::FileConfig`] (the serde
//! mirror of the TOML, unknown keys refused) → [`validate`] → the validated [`Config`]
//! ([`types`]). Every problem is reported as `key.path (line N): reason`, all at once.

pub mod file;
mod listeners;
mod locate;
mod sections;
mod tokens;
pub mod types;
mod validate;

use std::path::{Path, PathBuf};

pub use file::{ClaimNames, DiscoveryFormat, ExchangeMode, LegacyOpenMode, ProofMode};
pub use types::*;
use validate::Validator;

/// One configuration problem: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.reason),
            None => write!(f, "{}: {}", self.key, self.reason),
        }
    }
}

/// All problems found in one configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl Config {
    /// Reads, parses and validates `path`. Relative secret paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                key: path.display().to_string(),
                line: None,
                reason: format!("cannot read: {e}"),
            }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::parse_in(text, base, credentials.as_deref())
    }

    /// [`Config::parse`] with an explicit systemd credentials directory.
    pub fn parse_in(
        text: &str,
        base: &Path,
        credentials: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let raw: file::FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![locate::parse_problem(text, &e)],
        })?;
        let mut v = Validator::new(text, base, credentials);
        let config = v.validate(raw);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError {
                problems: v.problems,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
