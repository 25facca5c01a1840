//! `docs/openapi.yaml` matches the server: every path the router serves is documented with
//! exactly the methods it answers, and every documented operation answers (not 404 "No such
//! endpoint", not 405). Methods are found by probing a live server, so the test follows the
//! router rather than a second hand-kept list.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .expect("docs/openapi.yaml");
    serde_yaml::from_str(&text).expect("openapi.yaml parses")
}

fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let s = spec();
    assert_eq!(s["openapi"].as_str().unwrap_or(""), "3.1.0");
    s["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(p, item)| {
            let m = item
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.to_ascii_uppercase())
                .filter(|k| METHODS.contains(&k.as_str()))
                .collect();
            (p.clone(), m)
        })
        .collect()
}

/// A concrete request target for a path template.
fn concrete(template: &str) -> String {
    template
        .replace("{region}", "na")
        .replace("{version}", "v1")
        .replace("{appId}", APP)
        .replace("{streamkey}", "k1")
        .replace("{templateId}", "t1")
        .replace("{sid}", "s1")
        .replace("{forwarderId}", "ab")
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_answers() {
    let doc = documented();
    let served: BTreeSet<String> = sluice::api::served_paths().into_iter().collect();
    let doc_paths: BTreeSet<String> = doc.keys().cloned().collect();
    assert_eq!(
        served.difference(&doc_paths).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "served but not documented"
    );
    assert_eq!(
        doc_paths.difference(&served).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented but not served"
    );

    let s = Srv::start();
    let auth = basic();
    for (path, methods) in &doc {
        let target = concrete(path);
        let mut answered = BTreeSet::new();
        for m in METHODS {
            let r = raw(
                s.addr,
                m,
                &target,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                b"{}",
            );
            let unrouted = r.status == 404
                && serde_json::from_slice::<Value>(&r.body)
                    .map(|v| v["message"] == "No such endpoint.")
                    .unwrap_or(false);
            assert!(r.status < 500, "{m} {target}: {}", r.status);
            if r.status != 405 && !unrouted {
                answered.insert(m.to_string());
            }
        }
        assert_eq!(&answered, methods, "methods of {path}");
    }
}

#[test]
fn metrics_and_healthz_are_served_without_credentials() {
    let s = Srv::start();
    let _ = raw(s.addr, "GET", "/healthz", &[], b"");
    let r = raw(s.addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains(
            "sluice_rest_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("sluice_webhook_deliveries_total 0"));
    assert!(text.contains("sluice_table_generation "));
}
