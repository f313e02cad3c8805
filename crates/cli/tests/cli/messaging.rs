//! Inbound messages, chatbots, agents and the message log from the command line.

use super::*;

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
    assert!(
        ok(&["flows", "update-chatbot-sender", "help"])
            .contains("every chatbot sender already matches; nothing changed")
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
    // The whole exchange, bot and agent replies included, waiting for a connector to send
    // them (only `flowhost serve` sends).
    let log = ok(&["messages", "+385 91 123 4567"]);
    let lines: Vec<String> = log
        .lines()
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("sms person hi"),
        "{log}"
    );
    assert!(
        lines.contains(&"sms agent maria Maria here, how can I help? [pending]".to_owned()),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sms bot helper ") && l.ends_with("[pending]")),
        "{log}"
    );
    let json_lines = ok(&["messages", "385911234567", "--channel", "sms", "--json"]);
    let last: serde_json::Value = serde_json::from_str(json_lines.lines().last().unwrap()).unwrap();
    assert_eq!(last["by"], "maria", "{json_lines}");
    let out = flowhost(dir.path(), &["messages", "x", "--channel", "pigeon"]);
    assert!(
        text(&out).1.contains("--channel \"pigeon\": use sms"),
        "{}",
        text(&out).1
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
    // Under it, the session and its end reason, whichever exit it left by.
    let details = analytics
        .lines()
        .skip_while(|l| !l.starts_with("bot"))
        .nth(1)
        .unwrap()
        .trim();
    assert_eq!(details, "agent-redirect-failed=1 sessions=1", "{analytics}");
    let json = ok(&["analytics", "help", "--json"]);
    assert!(
        json.contains(r#""details":{"agent-redirect-failed":1,"sessions":1}"#),
        "{json}"
    );
    assert_eq!(row("agent"), "agent start-conversation 1 0 started=1");
    assert!(
        ok(&["chatbots", "list"])
            .contains("helper               active   sms        InfoSMS          scripted")
    );
}
