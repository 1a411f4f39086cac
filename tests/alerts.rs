//! The shipped Prometheus alerting rules (`docs/alerts.yml`): valid for promtool and each alert
//! unit-tested (`docs/alerts.test.yml`). That they query only exported metrics is a unit test
//! in `src/metrics.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// Runs promtool; `None` (with a SKIPPED line) when it is not installed.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(docs())
        .output()
    {
        Ok(out) => Some(out),
        Err(_) => {
            wopigate_testkit::skip_without("promtool", &format!("promtool {}", args.join(" ")));
            None
        }
    }
}

fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alerting_rules_pass_promtool_check() {
    if let Some(out) = promtool(&["check", "rules", "alerts.yml"]) {
        assert_success(&out);
    }
}

#[test]
fn every_alert_fires_when_it_should_and_not_before() {
    let Some(out) = promtool(&["test", "rules", "alerts.test.yml"]) else {
        return;
    };
    assert_success(&out);
    // Every alert of the rule file has a test.
    let rules = std::fs::read_to_string(docs().join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(docs().join("alerts.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no unit test for {name}"
        );
    }
}
