//! The `flowhost` binary, run as a user would.
//!
//! Why one file of more than 600 lines: it is its own test binary (each links wasmtime), and
//! every test is one user session through several commands sharing the workspace helpers at
//! the top; split it into modules under `tests/cli/` by area when it grows further.

use flowhost_tests::components as c;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

fn flowhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running flowhost")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::write(
        dir.path().join("flowhost.toml"),
        r#"
plugins_dir = "plugins"
database = "state.db"
cache_dir = "cache"

[outbound]
allow_private = ["127.0.0.1"]

[plugins.happy]
allow_hosts = ["127.0.0.1"]
secrets = { token = "cli-secret" }
"#,
    )
    .unwrap();
    dir
}

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
}

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
fn inbound_chatbot_conversation_and_analytics_from_the_command_line() {
    let dir = workspace();
    let ok = |args: &[&str]| {
        let out = flowhost(dir.path(), args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    };
    std::fs::write(
        dir.path().join("bot.json"),
        r#"{"id": "helper", "channel": "sms", "sender": "InfoSMS",
            "backend": {"type": "scripted", "greeting": "Hi!", "to_agent": ["agent"]}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flow.json"),
        r#"{"id": "help", "name": "Help", "status": "draft",
            "entry_points": [{"type": "inbound-message", "channel": "sms", "sender": "InfoSMS", "start": "bot"}],
            "elements": [
              {"id": "bot", "type": "start-chatbot", "config": {"sender": "InfoSMS"},
               "exits": {"default": "agent"}},
              {"id": "agent", "type": "start-conversation", "config": {"tag": "help", "create_tag": true},
               "exits": {"started": "end", "failed": "end"}},
              {"id": "end", "type": "exit"}]}"#,
    )
    .unwrap();
    ok(&["deploy", "flow.json"]);
    // Activation names what is missing, one line per issue, with the fix.
    let out = flowhost(dir.path(), &["flows", "status", "help", "active"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("flow \"help\": elements[0].type: (element \"bot\") Answers is not enabled for this account; enable it (flowhost answers enable)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("elements[0]: (element \"bot\") can be reached without an evaluate-inbound element before it"),
        "{stderr}"
    );

    // Put an evaluate-inbound before the chatbot, enable Answers, add the bot, activate.
    let flow = std::fs::read_to_string(dir.path().join("flow.json"))
        .unwrap()
        .replace(
            r#""start": "bot"}],"#,
            r#""start": "ask"}],"#,
        )
        .replace(
            r#"{"id": "bot","#,
            r#"{"id": "ask", "type": "evaluate-inbound", "config": {"channel": "sms", "sender": "InfoSMS"},
               "exits": {"other": "bot"}},
              {"id": "bot","#,
        );
    std::fs::write(dir.path().join("flow.json"), flow).unwrap();
    ok(&["deploy", "flow.json"]);
    ok(&["answers", "enable"]);
    assert!(
        ok(&["chatbots", "add", "bot.json"])
            .contains("chatbot \"helper\" is on sms sender InfoSMS")
    );
    assert!(ok(&["flows", "status", "help", "active"]).contains("flow \"help\" is active"));
    assert!(
        ok(&["flows", "list"])
            .contains("help                     active      4 elements  entry: inbound-message")
    );

    // The first message starts the flow; the person is created; the second reaches
    // the chatbot session the participant waits in.
    let inbound = |from: &str, text: &str| {
        ok(&[
            "inbound",
            "--channel",
            "sms",
            "--from",
            from,
            "--to",
            "InfoSMS",
            text,
        ])
    };
    let first = inbound("+385 91 123 4567", "hi");
    assert!(first.contains(r#""to":"started""#), "{first}");
    let person = ok(&["people", "get", "+385911234567"]);
    assert!(person.contains(r#""phones":["+385911234567"]"#), "{person}");
    // A People person runs a flow by contact; their attributes are in the journey.
    ok(&["people", "define", "tier", "text"]);
    let added = ok(&[
        "people",
        "add",
        r#"{"emails": ["ada@example.com"], "attributes": {"firstName": "Ada", "tier": "gold"}}"#,
    ]);
    assert!(added.contains(r#""tier":"gold""#), "{added}");
    std::fs::write(
        dir.path().join("hello.json"),
        r#"{"id": "hello", "name": "Hello", "entry_points": [{"type": "api", "start": "s"}],
            "elements": [{"id": "s", "type": "set-variable",
                          "config": {"set": {"greeting": "Hi {{person.firstName}} ({{person.tier}})"}}}]}"#,
    )
    .unwrap();
    let run = ok(&[
        "run",
        "hello.json",
        "--person-id",
        "ADA@example.com",
        "--json",
    ]);
    assert!(run.contains(r#""greeting":"Hi Ada (gold)""#), "{run}");
    let out = flowhost(
        dir.path(),
        &["run", "hello.json", "--person-id", "nobody@example.com"],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--person-id: no person with id or contact \"nobody@example.com\"; add one with `flowhost people add`"), "{}", text(&out).1);
    let out = flowhost(dir.path(), &["people", "get", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("no person with id or contact \"nobody@example.com\"; add one with"),
        "{}",
        text(&out).1
    );
    let second = inbound("385911234567", "hello");
    assert!(second.contains(r#""to":"waiting""#), "{second}");
    let third = inbound("385911234567", "agent please");
    assert!(third.contains(r#""to":"chatbot""#), "{third}");

    // The bot's "to agent" step leads to a conversation an agent takes.
    let list = ok(&["conversations", "list", "--tag", "help", "--json"]);
    let conversation: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    let id = conversation["id"].as_str().unwrap();
    assert_eq!(conversation["status"], "open");
    ok(&["conversations", "assign", id, "maria"]);
    ok(&["conversations", "reply", id, "Maria here, how can I help?"]);
    ok(&["conversations", "close", id]);
    let closed = ok(&["conversations", "list", "--status", "closed"]);
    assert!(
        closed.contains("closed    help             maria"),
        "{closed}"
    );

    let analytics = ok(&["analytics", "help"]);
    let row = |id: &str| {
        analytics
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {analytics}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("ask"), "ask evaluate-inbound 1 0 other=1");
    assert_eq!(row("bot"), "bot start-chatbot 1 0 default=1");
    assert_eq!(row("agent"), "agent start-conversation 1 0 started=1");
    assert!(
        ok(&["chatbots", "list"])
            .contains("helper               active   sms        InfoSMS          scripted")
    );
}

#[test]
fn diagnostics_go_to_stderr_as_json_lines_naming_the_step() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("flow.json"),
        r#"{"id": "f", "name": "F", "entry_points": [{"type": "api", "start": "s"}],
            "elements": [
              {"id": "s", "type": "set-variable", "config": {"set": {"x": "{{missing}}"}}, "exits": {"next": "e"}},
              {"id": "e", "type": "exit"}]}"#,
    )
    .unwrap();
    let run = |log: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowhost"));
        command
            .current_dir(dir.path())
            .args(["run", "flow.json", "--log-format", "json"])
            .env_remove("FLOWHOST_LOG");
        if let Some(filter) = log {
            command.env("FLOWHOST_LOG", filter);
        }
        let out = command.output().unwrap();
        let (_, stderr) = text(&out);
        let events: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        events
    };
    // Warnings by default: the participant stopped because the failed element has no error
    // exit, said with the flow and element it happened in.
    let events = run(None);
    assert_eq!(events.len(), 1, "{events:?}");
    let failed = &events[0];
    assert_eq!(failed["level"], "WARN");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("participant failed"),
        "{failed}"
    );
    assert_eq!(
        (&failed["flow"], &failed["element"]),
        (&json!("f"), &json!("s"))
    );
    assert!(
        failed["reason"].as_str().unwrap().contains("missing"),
        "{failed}"
    );
    // FLOWHOST_LOG=debug adds every step, inside the span of the step.
    let events = run(Some("debug"));
    let steps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "step ran")
        .collect();
    assert_eq!(steps.len(), 1, "{events:?}");
    assert_eq!(steps[0]["span"]["name"], "step");
    assert_eq!(steps[0]["span"]["element"], "s");
    assert!(
        steps[0]["span"]["participant"]
            .as_str()
            .unwrap()
            .starts_with("p-")
    );
}

/// One HTTP/1.1 request over a plain socket (the CLI tests have no HTTP client); the status
/// and the body.
fn http(addr: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_over_http_until_sigterm_and_exits_0_with_nothing_lost() {
    use std::io::{BufRead, BufReader, Write};
    let dir = workspace();
    let mut toml = std::fs::read_to_string(dir.path().join("flowhost.toml")).unwrap();
    toml.push_str(
        "\n[server]\nlisten = \"127.0.0.1:0\"\napi_keys = [{ name = \"cli\", env = \"FLOWHOST_TEST_SERVE_KEY\" }]\n",
    );
    std::fs::write(dir.path().join("flowhost.toml"), toml).unwrap();

    // The digest printed for [server] api_keys is the key's SHA-256.
    let mut hashing = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir.path())
        .args(["serve", "--hash-key"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    hashing
        .stdin
        .take()
        .unwrap()
        .write_all(b"cli-api-key-93")
        .unwrap();
    let out = hashing.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "dec551823e46329fba88a75387b21b3d56592b5c207e13d2263ff3283141f9e9"
    );

    // Without its key's variable the service refuses to start, saying which.
    let out = flowhost(dir.path(), &["serve"]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("FLOWHOST_TEST_SERVE_KEY is not set"),
        "{}",
        text(&out).1
    );

    let mut service = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir.path())
        .arg("serve")
        .env("FLOWHOST_TEST_SERVE_KEY", "cli-api-key-93")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(service.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let flow = json!({
        "id": "later", "name": "Later",
        "entry_points": [{"type": "api", "start": "w"}],
        "elements": [
            {"id": "w", "type": "wait", "config": {"duration": "1d"}, "exits": {"next": "e"}},
            {"id": "e", "type": "exit"}
        ]
    });
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/flows",
        "cli-api-key-93",
        &flow.to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = http(&addr, "GET", "/v1/flows", "not-the-key", "");
    assert_eq!(status, 401);
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/flows/later/participants",
        "cli-api-key-93",
        r#"{"participants": [{"contact": "+385911234567"}, {"contact": "ana@example.com"}]}"#,
    );
    assert_eq!(status, 202, "{body}");
    let added: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = added["participants"][0].as_str().unwrap().to_owned();

    // SIGTERM: the service drains and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = service.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    assert!(rest.contains("flowhost stopped"), "{rest}");

    // Both participants were kept: they wait in the flow, as the CLI shows.
    let out = flowhost(dir.path(), &["journey", &first, "--json"]);
    let summary: serde_json::Value =
        serde_json::from_str(text(&out).0.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "waiting", "{summary}");
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
