//! Per-thread handles of the per-request series, found by label values once: the vectors'
//! `with_label_values` hashes the label strings and takes the vector's lock on every call, five
//! times per proxied request. The label sets are the vectors' own (closed sets and configured
//! app names), so the cache is as bounded as the series.

use std::cell::RefCell;
use std::collections::HashMap;

use prometheus::{Histogram, IntCounter};

/// The WOPI series of one operation and office app; requests by status class.
struct Wopi {
    app: Box<str>,
    requests: [Option<IntCounter>; 6],
    duration: Histogram,
    request_bytes: IntCounter,
    response_bytes: IntCounter,
}

#[derive(Default)]
struct Cache {
    /// By the addresses of the `&'static str` labels (listener, route, class).
    http: HashMap<(usize, usize, usize), IntCounter>,
    /// By the operation label's address, then the app's name.
    wopi: HashMap<usize, Vec<Wopi>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

fn class_index(class: &str) -> usize {
    match class {
        "1xx" => 0,
        "2xx" => 1,
        "3xx" => 2,
        "4xx" => 3,
        "5xx" => 4,
        _ => 5,
    }
}

impl super::Metrics {
    /// One finished request in `wopigate_http_requests_total`.
    pub fn count_request(&self, listener: &'static str, route: &'static str, class: &'static str) {
        let m = self;
        let key = (
            listener.as_ptr() as usize,
            route.as_ptr() as usize,
            class.as_ptr() as usize,
        );
        CACHE.with_borrow_mut(|c| {
            c.http
                .entry(key)
                .or_insert_with(|| m.http_requests.with_label_values(&[listener, route, class]))
                .inc()
        });
    }

    /// One finished WOPI request: count by status class, duration and bytes.
    pub fn observe_wopi(
        &self,
        operation: &'static str,
        app: &str,
        class: &'static str,
        seconds: f64,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let m = self;
        CACHE.with_borrow_mut(|c| {
            let apps = c.wopi.entry(operation.as_ptr() as usize).or_default();
            let at = match apps.iter().position(|w| &*w.app == app) {
                Some(at) => at,
                None => {
                    let labels = [operation, app];
                    apps.push(Wopi {
                        app: app.into(),
                        requests: Default::default(),
                        duration: m.wopi_duration.with_label_values(&labels),
                        request_bytes: m.wopi_request_bytes.with_label_values(&labels),
                        response_bytes: m.wopi_response_bytes.with_label_values(&labels),
                    });
                    apps.len() - 1
                }
            };
            let w = &mut apps[at];
            w.requests[class_index(class)]
                .get_or_insert_with(|| m.wopi_requests.with_label_values(&[operation, app, class]))
                .inc();
            w.duration.observe(seconds);
            w.request_bytes.inc_by(bytes_in);
            w.response_bytes.inc_by(bytes_out);
        });
    }
}
