/// The Grafana dashboard and the alert rules query only metrics registered here.
mod dashboard;

use super::*;

#[test]
fn cached_handles_count_into_the_same_series() {
    let m = metrics();
    let get = |labels: &[&str]| m.http_requests.with_label_values(labels).get();
    let before = get(&["test-listener", "test_route", "2xx"]);
    let wopi = |app: &str, class: &str| {
        m.wopi_requests
            .with_label_values(&["TestOperation", app, class])
            .get()
    };
    let (a0, b0) = (wopi("AppA", "2xx"), wopi("AppB", "5xx"));
    let bytes0 = m
        .wopi_response_bytes
        .with_label_values(&["TestOperation", "AppA"])
        .get();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let m = metrics();
                for _ in 0..4 {
                    m.count_request("test-listener", "test_route", "2xx");
                    m.observe_wopi("TestOperation", "AppA", "2xx", 0.01, 1, 10);
                }
                // Another app and class under the same operation: their own series.
                m.observe_wopi("TestOperation", &String::from("AppB"), "5xx", 0.01, 0, 0);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(get(&["test-listener", "test_route", "2xx"]) - before, 12);
    assert_eq!(
        (wopi("AppA", "2xx") - a0, wopi("AppB", "5xx") - b0),
        (12, 3)
    );
    let bytes = m
        .wopi_response_bytes
        .with_label_values(&["TestOperation", "AppA"])
        .get();
    assert_eq!(bytes - bytes0, 120);
}

#[test]
fn exposition_names_follow_conventions_and_carry_build_info() {
    let m = metrics();
    m.wopi_requests
        .with_label_values(&["GetFile", "demo", "2xx"])
        .inc();
    let text = String::from_utf8(m.encode()).unwrap();
    assert!(text.contains("wopigate_build_info{version=\""), "{text}");
    assert!(text.contains(
        "wopigate_wopi_requests_total{app=\"demo\",operation=\"GetFile\",status_class=\"2xx\"}"
    ));
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split(' ').skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("wopigate_"), "{name}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
    }
}

#[test]
fn status_classes() {
    assert_eq!(status_class(204), "2xx");
    assert_eq!(status_class(409), "4xx");
    assert_eq!(status_class(0), "none");
}
