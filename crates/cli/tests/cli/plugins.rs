//! `flowhost plugins` and `flowhost validate`.

use super::*;

#[test]
fn plugins_inspect_shows_the_manifest_and_cache_status() {
    let dir = workspace();
    let out = flowhost(dir.path(), &["plugins", "inspect", c::HAPPY]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("happy 1.2.0 — Happy path"), "{stdout}");
    assert!(
        stdout.contains("WIT:      flowhost:element@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exits:    found, not-found, error"),
        "{stdout}"
    );
    assert!(
        stdout.contains("url                  text     required"),
        "{stdout}"
    );
    assert!(
        stdout.contains("token                text     optional, secret"),
        "{stdout}"
    );
    assert!(
        stdout.contains("declared 127.0.0.1; granted 127.0.0.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cache:    compiled, now cached"),
        "{stdout}"
    );
    let again = text(&flowhost(dir.path(), &["plugins", "inspect", c::HAPPY])).0;
    assert!(again.contains("cache:    cached"), "{again}");

    let json = text(&flowhost(
        dir.path(),
        &["plugins", "inspect", "--json", c::HAPPY],
    ))
    .0;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], "happy");
    assert_eq!(v["wit_version"], "0.1.0");
    assert_eq!(v["cache"]["status"], "hit");
}

#[test]
fn plugins_list_loads_the_good_and_names_the_bad() {
    let dir = workspace();
    std::fs::copy(c::HAPPY, dir.path().join("plugins/happy.wasm")).unwrap();
    std::fs::write(dir.path().join("plugins/broken.wasm"), b"nope").unwrap();
    let out = flowhost(dir.path(), &["plugins", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("happy") && stdout.contains("1.2.0"),
        "{stdout}"
    );
    assert_eq!(
        stderr.trim(),
        "warning: plugins/broken.wasm: not a WebAssembly file; remove it from the plugins folder"
    );
    // Inspecting a file outside the folder: advice for that file, each cause once.
    std::fs::write(dir.path().join("some.json"), b"{}").unwrap();
    let stderr = text(&flowhost(dir.path(), &["plugins", "inspect", "some.json"])).1;
    assert_eq!(
        stderr.trim(),
        "error: some.json: not a WebAssembly file; `flowhost plugins inspect` takes a component built for wasm32-wasip2"
    );
    let stderr = text(&flowhost(
        dir.path(),
        &["plugins", "inspect", "missing.wasm"],
    ))
    .1;
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: missing.wasm: cannot read: No such file"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_one_line_per_issue_and_fails() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"id": "b", "name": "B", "entry_points": [{"type": "api", "start": "a"}],
            "elements": [{"id": "a", "type": "wait", "config": {"duration": "x"}, "exits": {"later": "a2"}}]}"#,
    )
    .unwrap();
    let out = flowhost(dir.path(), &["validate", "bad.json"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "bad.json: elements[0].exits.later: no element \"a2\"",
            "bad.json: elements[0].config.duration: (element \"a\") \"x\" is not a duration; write a positive whole number with s, m, h or d, e.g. \"15m\"",
        ]
    );
    std::fs::write(dir.path().join("syntax.json"), "{\"id\": \"b\",").unwrap();
    let (_, stderr) = text(&flowhost(dir.path(), &["validate", "syntax.json"]));
    assert!(stderr.starts_with("error: syntax.json: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A check writes nothing: no database appears where there was none.
    std::fs::write(
        dir.path().join("good.json"),
        r#"{"id": "g", "name": "G", "entry_points": [{"type": "api", "start": "a"}],
            "elements": [{"id": "a", "type": "exit"}]}"#,
    )
    .unwrap();
    let out = flowhost(dir.path(), &["validate", "good.json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!dir.path().join("state.db").exists());
}

#[test]
fn plugins_run_tries_an_element_without_a_flow() {
    let dir = workspace();
    let run = |args: &[&str]| {
        let mut all = vec!["plugins", "run"];
        all.extend_from_slice(args);
        let out = flowhost(dir.path(), &all);
        let (stdout, stderr) = text(&out);
        (out.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = run(&[c::TRIVIAL]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("plugin trivial@0.1.0: exit done ("),
        "{stdout}"
    );
    let (ok, stdout, _) = run(&[c::TRIVIAL, "--json"]);
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (&report["plugin"], &report["exit"], &report["failure"]),
        (&json!("trivial@0.1.0"), &json!("done"), &json!(null)),
        "{report}"
    );

    // Under the operator's grants: the request it sends is shown with what came of it.
    let (ok, stdout, _) = run(&[
        c::HAPPY,
        "--field",
        "url=http://127.0.0.1:9/record",
        "--person",
        r#"{"id": "p1", "attributes": {"firstName": "Ada"}}"#,
    ]);
    assert!(!ok);
    assert!(
        stdout.starts_with("plugin happy@1.2.0: failed, leaves by error: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("request GET http://127.0.0.1:9/record -> could not connect"),
        "{stdout}"
    );

    // An author with no flowhost.toml grants tries it with a host and a secret of their
    // own, for this run only.
    std::fs::write(dir.path().join("bare.toml"), "cache_dir = \"cache\"\n").unwrap();
    let bare = |args: &[&str]| {
        let mut all = vec!["--config", "bare.toml", "plugins", "run", c::HAPPY];
        all.extend_from_slice(args);
        text(&flowhost(dir.path(), &all)).0
    };
    let stdout = bare(&["--field", "url=http://127.0.0.1:9/x"]);
    assert!(
        stdout.contains("request refused: 127.0.0.1:9 is not granted"),
        "{stdout}"
    );
    let stdout = bare(&[
        "--field",
        "url=http://127.0.0.1:9/x",
        "--allow-host",
        "127.0.0.1",
        "--secret",
        "token=s3cr3t-value",
    ]);
    assert!(
        stdout.contains("GET http://127.0.0.1:9/x -> could not connect"),
        "{stdout}"
    );
    assert!(stdout.contains("using token [secret:token]"), "{stdout}");
    assert!(!stdout.contains("s3cr3t-value"), "{stdout}");

    // Its configuration is checked as a flow's would be.
    let (ok, _, stderr) = run(&[c::HAPPY]);
    assert!(!ok);
    assert!(
        stderr.contains(": config.url: is required by plugin happy@1.2.0"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&[c::HAPPY, "--field", "url"]);
    assert!(!ok);
    assert!(
        stderr.contains("--field: \"url\": write NAME=VALUE"),
        "{stderr}"
    );
}

/// A plugin author's first commands, outside any checkout: `plugins new`, then `cargo test` in
/// the new crate builds the component with the SDK the binary carries and runs it on the host
/// through `flowhost plugins run`, against a profile API of its own on 127.0.0.1.
#[test]
fn plugins_new_makes_a_crate_that_builds_and_passes_its_test_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowhost(dir.path(), &["plugins", "new", "hello-el"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("flowhost-sdk 0.1.0 is in vendor/flowhost-sdk"),
        "{stdout}"
    );
    let krate = dir.path().join("hello-el");
    let test = Command::new("cargo")
        .current_dir(&krate)
        .arg("test")
        // As in an author's shell: the crate's rust-toolchain.toml and its own target folder.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("FLOWHOST")
        .output()
        .expect("running cargo");
    let (stdout, stderr) = text(&test);
    assert!(test.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("test greets_known_people_and_routes_unknown_ones ... ok"),
        "{stdout}"
    );
    // It ran through this binary, which kept its compile cache in the crate's target folder.
    assert!(krate.join("target/flowhost/.flowhost/cache").is_dir());

    let out = flowhost(
        dir.path(),
        &["plugins", "new", "other", "--flowhost-path", "/nowhere"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("--flowhost-path /nowhere: no sdk/Cargo.toml there"),
        "{}",
        text(&out).1
    );
}
