//! Elements written in JavaScript (componentize-js) and Python (componentize-py) against the
//! same WIT, loaded and run on the real host. `./dev test` builds them first
//! (`./dev other-langs`); the JavaScript one also imports `wasi:http`, as default
//! componentize-js builds do, which the host links.

use flowhost::person::Person;
use flowhost::plugin::cache::CacheStatus;
use flowhost::testing::{PluginTest, TestServer};
use serde_json::json;
use std::path::PathBuf;

fn component(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/other-langs")
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing; build it with `./dev other-langs` (needs node/npm and python3)",
        path.display()
    );
    path
}

fn ada() -> Person {
    Person {
        id: "ada".into(),
        attributes: json!({"firstName": "Ada"}).as_object().unwrap().clone(),
        ..Person::default()
    }
}

async fn exercise(id: &str, file: &str) {
    let wasm = component(file);
    let visits = TestServer::start(|r| {
        if r.path.ends_with("/broken") {
            (500, "text/plain", "oops".into())
        } else {
            (200, "text/plain", "7".into())
        }
    })
    .await;
    let test = || {
        PluginTest::new(id, &wasm)
            .setting("base_url", &visits.url())
            .grant(&visits.addr.to_string())
            .person(ada())
    };

    let run = test().config(json!({"greeting": "Hi"})).run().await;
    assert_eq!(run.exit(), Some("greeted"), "{id}: {run:?}");
    assert_eq!(run.variables["greeting"], json!("Hi, Ada!"), "{id}");
    assert_eq!(run.variables["visits"], json!(7), "{id}");
    assert!(
        format!("{:?}", run.logs).contains("greeted Ada"),
        "{id}: {:?}",
        run.logs
    );
    assert_eq!(
        visits.received().last().unwrap().path,
        "/visits/ada",
        "{id}"
    );

    // The default from describe().
    let run = test().run().await;
    assert_eq!(run.variables["greeting"], json!("Hello, Ada!"), "{id}");

    // Both error variants of the WIT result reach the error exit with their message.
    let run = test().config(json!({"greeting": "  "})).run().await;
    assert_eq!(
        run.failure(),
        Some(
            "plugin rejected its configuration: greeting is empty; write a greeting or leave it out"
        ),
        "{id}"
    );
    let run = test()
        .person(Person {
            id: "broken".into(),
            ..ada()
        })
        .run()
        .await;
    assert_eq!(
        run.failure(),
        Some("plugin error: visits service answered 500"),
        "{id}"
    );
}

#[tokio::test]
async fn a_javascript_element_runs_on_the_host() {
    exercise("js-greeter", "js_greeter.wasm").await;
}

#[tokio::test]
async fn a_python_element_runs_on_the_host() {
    exercise("py-greeter", "py_greeter.wasm").await;
}

#[tokio::test]
async fn large_components_load_from_the_cache_after_the_first_compile() {
    let dir = tempfile::tempdir().unwrap();
    let config = flowhost::config::OperatorConfig {
        cache_dir: dir.path().join("cache"),
        ..Default::default()
    };
    for file in ["js_greeter.wasm", "py_greeter.wasm"] {
        let path = component(file);
        let first = flowhost::runtime::plugin_host(&config)
            .unwrap()
            .load_file(&path)
            .await
            .unwrap();
        assert_eq!(first.cache, CacheStatus::Compiled, "{file}");
        let again = flowhost::runtime::plugin_host(&config)
            .unwrap()
            .load_file(&path)
            .await
            .unwrap();
        assert_eq!(again.cache, CacheStatus::Hit, "{file}");
    }
}
