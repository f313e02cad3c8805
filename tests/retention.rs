//! Retention: pruning removes finished participants with their journeys, and done messages,
//! once they are older than `[retention]` keeps; live participants, messages still to be sent
//! and the analytics stay.

use flowhost::clock::ManualClock;
use flowhost::engine::Engine;
use flowhost::flow::FlowDef;
use flowhost::messaging::{Author, Channel, LoggedMessage, SendState, Sending, log_message};
use flowhost::person::Person;
use flowhost::retention::{Pruned, RetentionConfig, prune};
use flowhost::store::{RecordStore, SqliteStore, Status};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn message(id: &str, sending: Option<SendState>) -> LoggedMessage {
    LoggedMessage {
        id: id.into(),
        channel: Channel::Sms,
        contact: "+385911234567".into(),
        sender: "InfoSMS".into(),
        author: Author::Bot,
        by: None,
        text: "Thanks!".into(),
        at: T0,
        sending: sending.map(|state| Sending {
            state,
            ..Sending::pending()
        }),
    }
}

#[tokio::test]
async fn old_finished_participants_and_messages_go_and_the_rest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("state.db")).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::new(
        store.clone(),
        clock.clone(),
        flowhost::elements::builtins(store.clone()),
    );
    for (id, first) in [
        (
            "quick",
            json!({"id": "go", "type": "set-variable", "config": {"set": {"x": 1}}, "exits": {"next": "end"}}),
        ),
        (
            "slow",
            json!({"id": "go", "type": "wait", "config": {"duration": "60d"}, "exits": {"next": "end"}}),
        ),
    ] {
        let def = json!({"id": id, "name": id, "entry_points": [{"type": "api", "start": "go"}],
            "elements": [first, {"id": "end", "type": "exit"}]});
        engine
            .deploy(
                FlowDef::parse(&def.to_string(), "f.json").unwrap(),
                "f.json",
            )
            .await
            .unwrap();
    }
    let person = || Person {
        id: "ada".into(),
        ..Person::default()
    };
    let mut done = Vec::new();
    for _ in 0..3 {
        let p = engine
            .start("quick", person(), BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(p.status, Status::Completed);
        done.push(p.id);
    }
    let live = engine
        .start("slow", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(live.status, Status::Waiting);
    log_message(store.as_ref(), &message("sent", Some(SendState::Sent)))
        .await
        .unwrap();
    log_message(store.as_ref(), &message("unsent", Some(SendState::Pending)))
        .await
        .unwrap();
    let analytics = engine.analytics("quick").await.unwrap();

    let config = RetentionConfig {
        batch: 2,
        ..RetentionConfig::default()
    };
    clock.advance_ms(29 * DAY);
    assert_eq!(
        prune(store.as_ref(), T0 + 29 * DAY, &config).await.unwrap(),
        Pruned::default()
    );
    let pruned = prune(store.as_ref(), T0 + 31 * DAY, &config).await.unwrap();
    assert_eq!((pruned.participants, pruned.messages), (3, 1), "{pruned:?}");
    for id in &done {
        assert!(engine.journey(id).await.unwrap().is_empty());
    }
    assert_eq!(engine.analytics("quick").await.unwrap(), analytics);
    assert_eq!(engine.journey(&live.id).await.unwrap().len(), 1);
    let kept: Vec<String> = store
        .records("message", None, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(kept, ["unsent"]);

    // The live participant goes on when its wait ends.
    clock.advance_ms(31 * DAY);
    let resumed = engine.resume_due().await.unwrap();
    assert_eq!(resumed[0].status, Status::Completed);
}
