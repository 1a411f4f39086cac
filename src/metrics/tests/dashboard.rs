/// Asserts every `wopigate_*` metric `text` queries is registered here; returns how many
/// uses it found.
fn assert_only_exported(text: &str, what: &str) -> usize {
    let source = [
        include_str!("../../metrics.rs"),
        include_str!("../control.rs"),
    ]
    .concat();
    let mut rest = text;
    let mut seen = 0;
    while let Some(at) = rest.find("wopigate_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            source.contains(&format!("\"{base}\"")),
            "{what} queries unknown metric {name}"
        );
        seen += 1;
        rest = &rest[at + name.len()..];
    }
    seen
}

/// Every metric the shipped Grafana dashboard queries exists here, so the dashboard cannot
/// silently drift from the code.
#[test]
fn grafana_dashboard_queries_only_existing_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/grafana-dashboard.json")).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queried += assert_only_exported(target["expr"].as_str().unwrap(), "the dashboard");
        }
    }
    assert!(queried >= 18, "{queried}");
}

/// The same for the alerting rules (`docs/alerts.yml`, checked by promtool in
/// `tests/alerts.rs`).
#[test]
fn alert_rules_query_only_existing_metrics() {
    let seen = assert_only_exported(include_str!("../../../docs/alerts.yml"), "the alert rules");
    assert!(seen >= 12, "{seen}");
}
