//! Running flows from the command line: `run`, `resume`, `queue`, `deploy`, `journey`.

use super::*;

#[test]
fn run_waits_durably_and_the_journey_survives_the_process() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("flow.json"),
        r#"{"id": "w", "name": "W", "entry_points": [{"type": "api", "start": "s"}],
            "elements": [
              {"id": "s", "type": "set-variable", "config": {"set": {"step": 1}}, "exits": {"next": "w"}},
              {"id": "w", "type": "wait", "config": {"duration": "1h"}, "exits": {"next": "e"}},
              {"id": "e", "type": "exit"}]}"#,
    )
    .unwrap();
    let out = flowhost(
        dir.path(),
        &[
            "run",
            "flow.json",
            "--json",
            "--var",
            "tier=gold",
            "--var",
            "n=3",
            "--person",
            r#"{"id": "p9"}"#,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["step"]["element_id"], "s");
    assert_eq!(lines[1]["step"]["element_id"], "w");
    let summary = &lines[2];
    assert_eq!(summary["status"], "waiting");
    assert_eq!(summary["variables"]["tier"], "gold");
    assert_eq!(summary["variables"]["n"], 3);
    let id = summary["participant"].as_str().unwrap();

    // A new process reads the same database.
    let out = flowhost(dir.path(), &["journey", id]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("(p9) in flow \"w\": waiting in \"w\" until"),
        "{stdout}"
    );
    let out = flowhost(dir.path(), &["resume"]);
    assert!(
        text(&out).0.starts_with("0 participants resumed"),
        "not due yet"
    );
}

#[test]
fn call_api_from_the_command_line_warns_queues_and_hides_secrets() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt.block_on(flowhost_tests::TestServer::start(|_| {
        (200, "application/json", r#"{"points": 7}"#.into())
    }));
    let dir = workspace();
    let toml = dir.path().join("flowhost.toml");
    let mut config = std::fs::read_to_string(&toml).unwrap();
    config += "\n[call_api]\nsecrets = { crm = \"cli-call-secret\" }\n";
    std::fs::write(&toml, config).unwrap();
    let flow = serde_json::json!({
        "id": "c", "name": "C", "entry_points": [{"type": "api", "start": "points"}],
        "elements": [
            {"id": "points", "type": "call-api",
             "config": {"url": format!("{}/points", srv.url()),
                        "headers": {"Authorization": "Bearer {{secret.crm}}"},
                        "response": {"body": {"points": "$.points"}}},
             "exits": {"2xx": "notify"}},
            {"id": "notify", "type": "call-api",
             "config": {"url": format!("{}/notify?p={{{{points}}}}", srv.url()), "method": "POST",
                        "wait_for_response": false,
                        "schedule": {"rate": {"requests": 1, "per": "day"}}},
             "exits": {"next": "end"}},
            {"id": "end", "type": "exit"}]
    });
    std::fs::write(dir.path().join("c.json"), flow.to_string()).unwrap();

    let out = flowhost(dir.path(), &["validate", "c.json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("is valid (3 elements, 1 warnings)"),
        "{stdout}"
    );
    assert!(
        stderr.starts_with(
            "warning: c.json: elements[0].exits: (element \"points\") no \"error\" exit"
        ),
        "{stderr}"
    );

    // Two participants: the first sends at once, the second queues for a day.
    for _ in 0..2 {
        let out = flowhost(dir.path(), &["run", "c.json", "--json"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(!stdout.contains("cli-call-secret") && !stderr.contains("cli-call-secret"));
    }
    let got = rt.block_on(async { srv.received() });
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/points", "/notify?p=7", "/points"]);
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer cli-call-secret")
    );
    let out = flowhost(dir.path(), &["queue", "c", "notify"]);
    assert_eq!(
        text(&out).0.trim(),
        "c/notify: 1 queued (sending speed), 0 outside the delivery window, 0 waiting to retry"
    );
}

#[test]
fn resume_watch_releases_waiting_participants_without_cron() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("flow.json"),
        r#"{"id": "w", "name": "W", "entry_points": [{"type": "api", "start": "w"}],
            "elements": [
              {"id": "w", "type": "wait", "config": {"duration": "1s"}, "exits": {"next": "s"}},
              {"id": "s", "type": "set-variable", "config": {"set": {"done": true}}, "exits": {"next": "e"}},
              {"id": "e", "type": "exit"}]}"#,
    )
    .unwrap();
    let out = flowhost(dir.path(), &["run", "flow.json", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "waiting");
    let id = summary["participant"].as_str().unwrap().to_owned();

    let mut watcher = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir.path())
        .args(["resume", "--watch", "100", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A process-level check: the participant is released within a few seconds of its time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let out = flowhost(dir.path(), &["journey", &id, "--json"]);
        let summary: serde_json::Value =
            serde_json::from_str(text(&out).0.lines().last().unwrap()).unwrap();
        if summary["status"] != "waiting" || std::time::Instant::now() > deadline {
            break summary;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    watcher.kill().unwrap();
    let _ = watcher.wait();
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["variables"]["done"], true);
}

#[test]
fn run_sees_the_deployed_flows_so_add_to_flow_reaches_its_target() {
    let dir = workspace();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let feedback = examples.join("feedback.json");
    let out = flowhost(dir.path(), &["deploy", feedback.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    std::fs::write(
        dir.path().join("ask.json"),
        json!({
            "id": "ask", "name": "Ask",
            "entry_points": [{"type": "api", "start": "add"}],
            "elements": [
                {"id": "add", "type": "add-to-flow", "config": {"flow": "feedback"},
                 "exits": {"success": "end", "failover": "end"}},
                {"id": "end", "type": "exit"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let out = flowhost(dir.path(), &["run", "ask.json", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let add: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(add["step"]["exit"], "success", "{stdout}");
    let entered = add["step"]["data"]["participant"].as_str().unwrap();
    // The participant it added waits in the feedback flow, as every command sees.
    let out = flowhost(dir.path(), &["journey", entered, "--json"]);
    let summary: serde_json::Value =
        serde_json::from_str(text(&out).0.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "waiting", "{summary}");
}

#[test]
fn run_refuses_a_flow_it_cannot_start_and_deploys_nothing() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("inbound.json"),
        json!({
            "id": "inbound-only", "name": "Inbound only",
            "entry_points": [{"type": "inbound-message", "channel": "sms", "sender": "InfoSMS",
                              "start": "end"}],
            "elements": [{"id": "end", "type": "exit"}]
        })
        .to_string(),
    )
    .unwrap();
    let out = flowhost(dir.path(), &["run", "inbound.json"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(
        stderr.trim(),
        "inbound.json: flow \"inbound-only\" has no api entry point, so `flowhost run` cannot start anyone in it; it has an inbound-message entry point: deploy it with `flowhost deploy` and send it a message with `flowhost inbound`"
    );
    let listed = text(&flowhost(dir.path(), &["flows", "list"])).0;
    assert!(!listed.contains("inbound-only"), "{listed}");
}

/// `flowhost prune` prunes once by `[retention]`; a finished participant younger than it
/// keeps stays.
#[test]
fn prune_keeps_what_retention_keeps() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("f.json"),
        r#"{"id": "f", "name": "F", "entry_points": [{"type": "api", "start": "e"}],
            "elements": [{"id": "e", "type": "exit"}]}"#,
    )
    .unwrap();
    let out = flowhost(dir.path(), &["run", "f.json", "--json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = flowhost(dir.path(), &["prune", "--json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let pruned: serde_json::Value = serde_json::from_str(text(&out).0.trim()).unwrap();
    assert_eq!(pruned["participants"], 0, "{pruned}");
    let out = flowhost(dir.path(), &["prune"]);
    assert!(
        text(&out)
            .0
            .starts_with("pruned 0 finished participants with their journeys, 0 messages"),
        "{}",
        text(&out).0
    );
}

/// `database = "postgres://..."` keeps everything in PostgreSQL: a flow run by one command
/// is continued by the next, as on SQLite, with no SQLite file written.
#[test]
fn flows_run_on_postgresql_when_the_database_is_a_url() {
    let server = flowhost_store_postgres::test_server::Server::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("flowhost.toml"),
        format!("database = \"{}\"\ncache_dir = \"cache\"\n", server.url),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("f.json"),
        r#"{"id": "f", "name": "F", "entry_points": [{"type": "api", "start": "s"}],
            "elements": [
              {"id": "s", "type": "set-variable", "config": {"set": {"x": 1}}, "exits": {"next": "w"}},
              {"id": "w", "type": "wait", "config": {"duration": "1s"}, "exits": {"next": "e"}},
              {"id": "e", "type": "exit"}]}"#,
    )
    .unwrap();
    let out = flowhost(dir.path(), &["run", "f.json", "--json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let started: serde_json::Value =
        serde_json::from_str(text(&out).0.lines().last().unwrap()).unwrap();
    assert_eq!(started["status"], "waiting", "{started}");
    let id = started["participant"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = flowhost(dir.path(), &["resume"]);
    assert!(
        text(&out).0.starts_with("1 participants resumed"),
        "{}",
        text(&out).0
    );
    let out = flowhost(dir.path(), &["journey", &id, "--json"]);
    let summary: serde_json::Value =
        serde_json::from_str(text(&out).0.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "completed", "{summary}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".db"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}
