//! Diagnostics on stderr, and `flowhost serve` as a process.

use super::*;

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

/// The address `flowhost serve` says it listens on, in the first line of its stderr.
pub(super) fn listen_address(stderr: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned()
}

/// One HTTP/1.1 request over a plain socket (the CLI tests have no HTTP client); the status
/// and the body.
pub(super) fn http(addr: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A service that stops answering fails the test rather than hanging it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("{method} {path}: no answer from the service: {e}"));
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_over_http_until_sigterm_and_exits_0_with_nothing_lost() {
    use std::io::{BufReader, Write};
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
    let addr = listen_address(&mut stderr);

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
