//! The JSONPath Compliance Test Suite (RFC 9535), run through flowhost's JSONPath layer.
//!
//! The suite lives beside the repository, in `../shared/jsonpath-cts/cts.json` (override with
//! `FLOWHOST_JSONPATH_CTS=/path/to/cts.json`). A missing suite fails the test: it is never
//! skipped silently.

use flowhost_flow::jsonpath::JsonPath;
use serde_json::Value;
use std::path::PathBuf;

fn suite() -> (PathBuf, Vec<Value>) {
    let path = std::env::var_os("FLOWHOST_JSONPATH_CTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/jsonpath-cts/cts.json")
        });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; put the JSONPath compliance suite there or set FLOWHOST_JSONPATH_CTS",
            path.display()
        )
    });
    let doc: Value = serde_json::from_str(&text).expect("cts.json is JSON");
    let tests = doc["tests"].as_array().expect("cts.json has tests").clone();
    (path, tests)
}

#[test]
fn every_compliance_case_passes() {
    let (path, tests) = suite();
    let mut failures = Vec::new();
    for case in &tests {
        let name = case["name"].as_str().unwrap_or("?");
        let selector = case["selector"].as_str().expect("selector");
        let parsed = JsonPath::parse(selector);
        if case["invalid_selector"].as_bool() == Some(true) {
            if parsed.is_ok() {
                failures.push(format!("{name}: {selector:?} should be rejected"));
            }
            continue;
        }
        let path = match parsed {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let got = Value::Array(path.query(&case["document"]).into_iter().cloned().collect());
        let ok = match (case.get("result"), case.get("results")) {
            (Some(expected), _) => got == *expected,
            (None, Some(Value::Array(any_of))) => any_of.contains(&got),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: {selector:?} gave {got}"));
        }
    }
    assert_eq!(tests.len(), 703, "{} changed size", path.display());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        tests.len(),
        failures.join("\n")
    );
}
