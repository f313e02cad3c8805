//! `docs/openapi.json` against the router: the same operations both ways, and every
//! documented operation answered by its handler (not the "no such endpoint" fallback, not
//! 405).

use super::*;
use std::collections::BTreeSet;

/// The (method, path) pairs of the OpenAPI document.
fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["summary"].is_string() && op["responses"].is_object(),
                "{method} {path} needs a summary and responses"
            );
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// The (method, path) pairs the router is built with, read from its source: every
/// `.route("path", get(..).post(..))` in `crates/server/src/lib.rs`.
fn routed() -> BTreeSet<(String, String)> {
    let source = include_str!("../../crates/server/src/lib.rs");
    let mut ops = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap().to_owned();
        // The arguments end where the parentheses opened by `.route(` close.
        let mut depth = 1;
        let args: String = chunk
            .chars()
            .take_while(|c| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth > 0
            })
            .collect();
        for method in ["get", "post", "put", "delete", "patch"] {
            if args.contains(&format!("{method}(")) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_what_the_router_serves() {
    let (docs, router) = (documented(), routed());
    assert!(
        router.len() > 20,
        "the router source was not read: {router:?}"
    );
    assert_eq!(
        docs.difference(&router).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not routed"
    );
    assert_eq!(
        router.difference(&docs).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented in docs/openapi.json"
    );

    // Each documented operation reaches a handler on a real service.
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), |_| {}).await;
    for (method, path) in &docs {
        let concrete = path
            .split('/')
            .map(|part| if part.starts_with('{') { "x" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = service
            .call(method.clone(), &concrete, Some(KEY), "{}")
            .await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        let fallback = answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no such endpoint"));
        assert!(
            !fallback,
            "{method} {concrete} is not routed: {}",
            answer.body
        );
    }
    service.stop().await;
}
