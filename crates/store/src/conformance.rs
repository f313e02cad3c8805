//! The conformance suite: what every backend must do, as async functions over a fresh, empty
//! store. A backend runs all of them from its tests with one macro line:
//!
//! ```ignore
//! // A fresh store, and whatever must live as long as it (a temporary folder).
//! async fn fresh() -> (MyStore, ()) { (MyStore::in_memory().unwrap(), ()) }
//! flowhost_store::conformance_tests!(fresh);
//! ```
//!
//! The macro expands to one `#[tokio::test]` per function, so the backend's crate needs
//! `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
//!
//! Why one file of more than 600 lines: it is the contract a second backend is written
//! against, read top to bottom, and its scenarios share one set of helpers; each scenario
//! is one short function, and the macro's list at the top is their index.

use crate::{
    EarlierAnswer, IdempotentRequest, Lease, ParticipantState, Record, SavedFlow, StateStore,
    Status, StatusCounts, StepRecord, StepWrite, StoreError,
};
use flowhost_types::log::{LogLevel, LogLine};
use flowhost_types::participant::{ElementState, HttpRequestRecord, JourneyEntry};
use flowhost_types::person::{Contact, Person};
use serde_json::json;
use std::collections::BTreeMap;

/// Runs each function of the suite as its own test against a store made by `$fresh` (an
/// `async fn() -> (impl StateStore, Guard)`, the guard kept until the test ends).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:ident) => {
        $crate::conformance_tests!(@each $fresh;
            flows_are_saved_and_replaced,
            flow_changes_are_listed_after_a_stamp,
            flow_versions_keep_participants_and_counts_apart,
            participants_round_trip,
            steps_append_journeys_and_count,
            claims_are_exclusive_and_fenced,
            leases_renew_and_end,
            expired_leases_are_taken_over,
            due_is_ordered_and_limited,
            wake_by_key,
            steps_enter_participants_atomically,
            participants_enter_once_per_idempotency_key,
            admitted_participants_are_kept_whole_and_due_in_order,
            a_run_of_steps_is_written_together,
            a_participant_is_inserted_with_its_first_steps,
            background_entries_take_the_next_seq,
            work_left_by_a_step_is_kept_with_it_and_finished_once,
            participants_of_a_flow_by_status,
            participants_are_counted_by_status_and_found_by_person,
            slots_are_spaced,
            waiting_is_counted_by_reason,
            people_are_found_by_any_contact,
            records_by_key_status_and_recency,
            holds_are_exclusive_until_they_expire,
            what_is_done_is_pruned_and_the_rest_kept,
        );
    };
    (@each $fresh:ident; $($name:ident),* $(,)?) => {
        mod conformance {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _guard) = super::$fresh().await;
                    $crate::conformance::$name(&store).await;
                }
            )*
        }
    };
}

const OWNER: &str = "node-a";

fn participant(flow: &str, at: &str) -> ParticipantState {
    ParticipantState::new(
        flow,
        1,
        at,
        Person {
            id: "ada".into(),
            phones: vec!["+385911234567".into()],
            ..Default::default()
        },
        BTreeMap::from([("n".to_owned(), json!(1))]),
    )
}

fn entry(element: &str, exit: Option<&str>) -> JourneyEntry {
    JourneyEntry {
        seq: 0,
        at_ms: 1_000,
        flow_version: 1,
        element_id: element.into(),
        element_type: "set-variable".into(),
        exit: exit.map(Into::into),
        next: None,
        variables_changed: BTreeMap::from([("n".to_owned(), json!(2))]),
        logs: vec![LogLine::new(LogLevel::Info, "hello")],
        data: Some(json!({"ok": true})),
        error: None,
        waiting_until: None,
        duration_us: 12,
        retried: 0,
        requests: vec![HttpRequestRecord {
            method: "GET".into(),
            url: "https://api.example.com/profile".into(),
            status: Some(200),
            error: None,
            duration_ms: 1.5,
        }],
    }
}

/// Inserts `p` claimed and leaves it waiting until `until` on `key`.
async fn waiting(
    store: &impl StateStore,
    mut p: ParticipantState,
    until: Option<i64>,
    key: Option<&str>,
) -> ParticipantState {
    let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
    p.status = Status::Waiting;
    p.waiting_until = until;
    p.wait_key = key.map(Into::into);
    p.steps += 1;
    store
        .record_step(&lease, &p, &entry("w", None), StepWrite::default())
        .await
        .unwrap();
    p
}

/// Every save of a flow (a new version, or the same one with another status) is listed by
/// `flows_changed_since` the stamp seen before it, once, in order; nothing else is.
pub async fn flow_changes_are_listed_after_a_stamp(store: &impl StateStore) {
    assert!(store.flows_changed_since(0).await.unwrap().is_empty());
    store.save_flow("a", 1, "{\"v\":1}").await.unwrap();
    store.save_flow("b", 1, "{\"v\":1}").await.unwrap();
    let all = store.flows_changed_since(0).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(all[0].changed > 0 && all[1].changed > all[0].changed);
    let seen = all[1].changed;
    assert!(store.flows_changed_since(seen).await.unwrap().is_empty());

    // A status change keeps the version and is still a change; a's later save comes after.
    store
        .save_flow("b", 1, "{\"v\":1,\"paused\":true}")
        .await
        .unwrap();
    store.save_flow("a", 2, "{\"v\":2}").await.unwrap();
    let since = store.flows_changed_since(seen).await.unwrap();
    let changes: Vec<(&str, u32, &str)> = since
        .iter()
        .map(|f| (f.id.as_str(), f.version, f.definition.as_str()))
        .collect();
    assert_eq!(
        changes,
        [("b", 1, "{\"v\":1,\"paused\":true}"), ("a", 2, "{\"v\":2}")]
    );
    assert!(since[1].changed > since[0].changed && since[0].changed > seen);
    // The full list carries the same stamps.
    let listed = store.flows().await.unwrap();
    assert_eq!(listed[0].changed, since[1].changed);
    assert!(
        store
            .flows_changed_since(since[1].changed)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Flows: the list is each flow's current version, by id; saving a version again replaces
/// it; every version stays readable.
pub async fn flows_are_saved_and_replaced(store: &impl StateStore) {
    // Without the change stamp, which the next test is about.
    let listed = |flows: Vec<SavedFlow>| -> Vec<(String, u32, String)> {
        flows
            .into_iter()
            .map(|f| (f.id, f.version, f.definition))
            .collect()
    };
    let saved =
        |id: &str, version, definition: &str| (id.to_owned(), version, definition.to_owned());
    store.save_flow("b", 1, "{\"v\":1}").await.unwrap();
    store.save_flow("a", 1, "{\"v\":1}").await.unwrap();
    store.save_flow("b", 2, "{\"v\":2}").await.unwrap();
    assert_eq!(
        listed(store.flows().await.unwrap()),
        [saved("a", 1, "{\"v\":1}"), saved("b", 2, "{\"v\":2}")]
    );
    store
        .save_flow("b", 2, "{\"v\":2,\"paused\":true}")
        .await
        .unwrap();
    assert_eq!(
        listed(store.flows().await.unwrap())[1],
        saved("b", 2, "{\"v\":2,\"paused\":true}")
    );
    assert_eq!(
        store.flow_version("b", 1).await.unwrap().as_deref(),
        Some("{\"v\":1}")
    );
    assert_eq!(
        store.flow_version("b", 2).await.unwrap().as_deref(),
        Some("{\"v\":2,\"paused\":true}")
    );
    assert_eq!(store.flow_version("b", 3).await.unwrap(), None);
    assert_eq!(store.flow_version("c", 1).await.unwrap(), None);
}

/// Participants keep the version they entered until moved (only when nobody runs them);
/// analytics count each version apart and all of them together.
pub async fn flow_versions_keep_participants_and_counts_apart(store: &impl StateStore) {
    let old = waiting(store, participant("f", "a"), Some(9_000), None).await;
    let mut newer = participant("f", "a");
    newer.flow_version = 2;
    let newer = waiting(store, newer, Some(9_000), None).await;
    let running = store
        .insert_claimed(&participant("f", "a"), OWNER, 60_000)
        .await
        .unwrap();
    let mut stepping = participant("f", "a");
    stepping.flow_version = 2;
    let lease = store
        .insert_claimed(&stepping, OWNER, 60_000)
        .await
        .unwrap();
    stepping.current = Some("b".into());
    stepping.status = Status::Completed;
    let step = StepWrite {
        entered: true,
        ..StepWrite::default()
    };
    store
        .record_step(&lease, &stepping, &entry("a", Some("next")), step)
        .await
        .unwrap();
    let read = |id: String| async move { store.participant(&id).await.unwrap().unwrap() };
    assert_eq!(read(old.id.clone()).await.flow_version, 1);
    assert_eq!(read(newer.id.clone()).await.flow_version, 2);
    let v1 = store.element_counts("f", Some(1)).await.unwrap();
    let v2 = store.element_counts("f", Some(2)).await.unwrap();
    let all = store.element_counts("f", None).await.unwrap();
    assert_eq!((v1["a"].entered, v1["a"].waiting), (0, 1));
    assert_eq!(
        (v2["a"].entered, v2["a"].exits["next"], v2["a"].waiting),
        (1, 1, 1)
    );
    assert_eq!((all["a"].entered, all["a"].waiting), (1, 2));
    assert!(store.element_counts("f", Some(3)).await.unwrap().is_empty());

    assert!(store.set_flow_version(&old.id, 2).await.unwrap());
    assert_eq!(read(old.id.clone()).await.flow_version, 2);
    assert_eq!(
        store.element_counts("f", Some(2)).await.unwrap()["a"].waiting,
        2
    );
    assert!(
        !store
            .set_flow_version(&running.participant, 2)
            .await
            .unwrap(),
        "a running participant is not moved"
    );
    assert_eq!(read(running.participant.clone()).await.flow_version, 1);
}

/// A participant reads back exactly as written, element state and event included.
pub async fn participants_round_trip(store: &impl StateStore) {
    let mut p = participant("f", "start");
    p.element_state = Some(ElementState {
        reason: "retry".into(),
        data: json!({"attempt": 2, "first_at": 1_000}),
    });
    p.event = Some(json!({"text": "hi"}));
    let lease = store.insert_claimed(&p, OWNER, 5_000).await.unwrap();
    assert_eq!(
        (
            lease.participant.as_str(),
            lease.owner.as_str(),
            lease.expires_at
        ),
        (p.id.as_str(), OWNER, 5_000)
    );
    assert_eq!(store.participant(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.participant("p-missing").await.unwrap(), None);
}

/// Steps append journey entries with consecutive seq numbers and count entries, exits and
/// what else the element tallies; waiting participants are counted per element.
pub async fn steps_append_journeys_and_count(store: &impl StateStore) {
    let mut p = participant("f", "a");
    let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
    p.current = Some("b".into());
    p.steps = 1;
    let first = entry("a", Some("next"));
    let enter = StepWrite {
        entered: true,
        ..StepWrite::default()
    };
    store.record_step(&lease, &p, &first, enter).await.unwrap();
    p.status = Status::Waiting;
    p.waiting_until = Some(9_000);
    p.steps = 2;
    let details = ["sessions".to_owned(), "expired".to_owned()];
    let with_details = StepWrite {
        tally: &details,
        ..enter
    };
    store
        .record_step(&lease, &p, &entry("b", None), with_details)
        .await
        .unwrap();
    let journey = store.journey(&p.id).await.unwrap();
    assert_eq!(journey.len(), 2);
    assert_eq!((journey[0].seq, journey[1].seq), (1, 2));
    assert_eq!(journey[0], JourneyEntry { seq: 1, ..first });
    let counts = store.element_counts("f", None).await.unwrap();
    assert_eq!(counts["a"].entered, 1);
    assert_eq!(counts["a"].exits, BTreeMap::from([("next".to_owned(), 1)]));
    assert_eq!((counts["b"].entered, counts["b"].waiting), (1, 1));
    assert_eq!(
        counts["b"].details,
        BTreeMap::from([("expired".to_owned(), 1), ("sessions".to_owned(), 1)])
    );
    assert!(counts["b"].exits.is_empty(), "details are not exits");
    assert!(
        store
            .element_counts("other", None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Only a waiting or queued participant can be claimed, once; a write under an older lease
/// is refused and writes nothing.
pub async fn claims_are_exclusive_and_fenced(store: &impl StateStore) {
    let p = waiting(store, participant("f", "w"), Some(10), None).await;
    let first = store
        .claim(&p.id, OWNER, 10, 70_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.was, Status::Waiting);
    assert_eq!(first.lease.owner, OWNER);
    assert!(
        store
            .claim(&p.id, "node-b", 10, 70_000)
            .await
            .unwrap()
            .is_none(),
        "claimed once"
    );
    let running = store.participant(&p.id).await.unwrap().unwrap();
    assert_eq!(running.status, Status::Running);
    let stale = Lease {
        epoch: first.lease.epoch - 1,
        ..first.lease.clone()
    };
    let mut done = running.clone();
    done.status = Status::Completed;
    done.current = None;
    done.steps += 1;
    let err = store
        .record_step(
            &stale,
            &done,
            &entry("w", Some("next")),
            StepWrite::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert!(matches!(
        store.release(&stale, &done).await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
    assert_eq!(store.participant(&p.id).await.unwrap(), Some(running));
    assert_eq!(
        store.journey(&p.id).await.unwrap().len(),
        1,
        "nothing written"
    );
    store
        .record_step(
            &first.lease,
            &done,
            &entry("w", Some("next")),
            StepWrite::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.participant(&p.id).await.unwrap().unwrap().status,
        Status::Completed
    );
    assert!(
        store
            .claim(&p.id, OWNER, 10, 70_000)
            .await
            .unwrap()
            .is_none()
    );
}

/// A lease renews under the same epoch; once the participant waits again, the next claim
/// gets a higher epoch and the old lease is refused.
pub async fn leases_renew_and_end(store: &impl StateStore) {
    let p = waiting(store, participant("f", "w"), Some(10), None).await;
    let claim = store
        .claim(&p.id, OWNER, 10, 20_000)
        .await
        .unwrap()
        .unwrap();
    let renewed = store.renew(&claim.lease, 90_000).await.unwrap();
    assert_eq!(
        renewed,
        Lease {
            expires_at: 90_000,
            ..claim.lease.clone()
        }
    );
    let mut back = store.participant(&p.id).await.unwrap().unwrap();
    back.status = Status::Waiting;
    back.waiting_until = Some(20);
    store.release(&renewed, &back).await.unwrap();
    let again = store
        .claim(&p.id, "node-b", 20, 80_000)
        .await
        .unwrap()
        .unwrap();
    assert!(again.lease.epoch > renewed.epoch);
    assert_eq!(again.lease.owner, "node-b");
    assert!(matches!(
        store.renew(&renewed, 99_000).await.unwrap_err(),
        StoreError::LeaseLost { .. }
    ));
}

/// A running participant whose lease expired (its engine crashed) is due and may be claimed
/// by another owner: it goes on from its last committed step as it would have then (entering
/// its element, or resuming in it with its state and event), the takeover is counted until
/// the next commit, and the crashed owner's late commit is refused.
pub async fn expired_leases_are_taken_over(store: &impl StateStore) {
    // Crashed after committing a step: the next element is entered again.
    let mut p = participant("f", "a");
    let lease = store.insert_claimed(&p, OWNER, 100).await.unwrap();
    p.current = Some("b".into());
    p.steps = 1;
    store
        .record_step(&lease, &p, &entry("a", Some("next")), StepWrite::default())
        .await
        .unwrap();
    assert!(
        store.due(99, 10, &[]).await.unwrap().is_empty(),
        "still held"
    );
    assert!(
        store
            .claim(&p.id, "node-b", 99, 500)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.due(100, 10, &[]).await.unwrap(), [p.id.clone()]);
    let taken = store
        .claim(&p.id, "node-b", 100, 500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.was, taken.retried), (Status::Queued, 1));
    assert!(taken.lease.epoch > lease.epoch);
    assert_eq!(
        store
            .participant(&p.id)
            .await
            .unwrap()
            .unwrap()
            .current
            .as_deref(),
        Some("b")
    );
    let mut late = p.clone();
    late.current = None;
    late.status = Status::Completed;
    assert!(matches!(
        store
            .record_step(&lease, &late, &entry("b", None), StepWrite::default())
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    // Taken over again before committing: the count goes on; a commit resets it.
    let again = store
        .claim(&p.id, "node-c", 500, 900)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.was, again.retried), (Status::Queued, 2));
    p.steps = 2;
    p.current = Some("c".into());
    store
        .record_step(
            &again.lease,
            &p,
            &entry("b", Some("next")),
            StepWrite::default(),
        )
        .await
        .unwrap();
    let third = store
        .claim(&p.id, "node-d", 900, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((third.was, third.retried), (Status::Queued, 1));
    let journey = store.journey(&p.id).await.unwrap();
    let seqs: Vec<u64> = journey.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2], "the late commit wrote nothing");

    // Crashed while resuming a wait: resumed again, its state and event kept.
    let mut w = participant("f", "w");
    w.element_state = Some(ElementState::new("timer", &json!({"since": 5})));
    let w = waiting(store, w, Some(10), None).await;
    let first = store.claim(&w.id, OWNER, 10, 50).await.unwrap().unwrap();
    assert_eq!((first.was, first.retried), (Status::Waiting, 0));
    let taken = store.claim(&w.id, "node-b", 50, 90).await.unwrap().unwrap();
    assert_eq!((taken.was, taken.retried), (Status::Waiting, 1));
    let stored = store.participant(&w.id).await.unwrap().unwrap();
    assert_eq!(stored.element_state, w.element_state);
    assert_eq!(stored.current, w.current);
}

/// Due: waiting participants whose time has come and queued ones, oldest first, up to the
/// limit; not later ones, running or finished ones, nor those of held flows.
pub async fn due_is_ordered_and_limited(store: &impl StateStore) {
    let late = waiting(store, participant("f", "w"), Some(300), None).await;
    let early = waiting(store, participant("f", "w"), Some(100), None).await;
    let _future = waiting(store, participant("f", "w"), Some(10_000), None).await;
    let _event_only = waiting(store, participant("f", "w"), None, Some("k")).await;
    let _running = store
        .insert_claimed(&participant("f", "a"), OWNER, 60_000)
        .await
        .unwrap();
    let mut queued = participant("g", "a");
    queued.status = Status::Queued;
    let holder = store
        .insert_claimed(&participant("f", "a"), OWNER, 60_000)
        .await
        .unwrap();
    let mut holder_state = store
        .participant(&holder.participant)
        .await
        .unwrap()
        .unwrap();
    holder_state.status = Status::Completed;
    holder_state.current = None;
    holder_state.steps = 1;
    store
        .record_step(
            &holder,
            &holder_state,
            &entry("a", None),
            StepWrite {
                entered: true,
                enter: std::slice::from_ref(&queued),
                ..StepWrite::default()
            },
        )
        .await
        .unwrap();
    let due = store.due(500, 10, &[]).await.unwrap();
    assert_eq!(due, [queued.id.clone(), early.id.clone(), late.id.clone()]);
    assert_eq!(store.due(500, 2, &[]).await.unwrap(), due[..2]);
    assert_eq!(store.due(50, 10, &[]).await.unwrap(), [queued.id.clone()]);
    // The participants of held (paused) flows are left out, wherever they are in the order.
    assert_eq!(
        store.due(500, 10, &["g".to_owned()]).await.unwrap(),
        [early.id.clone(), late.id.clone()]
    );
    assert_eq!(
        store.due(500, 1, &["g".to_owned()]).await.unwrap(),
        std::slice::from_ref(&early.id)
    );
    assert!(
        store
            .due(500, 10, &["f".to_owned(), "g".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );

    // Ada's attributes changed in People since she entered (Add to Flow does that).
    let kept = Person {
        id: "ada".into(),
        attributes: serde_json::Map::from_iter([("tier".to_owned(), json!("gold"))]),
        ..Person::default()
    };
    store.save_person(&kept).await.unwrap();

    // Claimed in one go, in the same order, leaving held flows; then there is nothing left.
    let ids = |claims: &[crate::Claim]| -> Vec<String> {
        claims.iter().map(|c| c.lease.participant.clone()).collect()
    };
    let first = store
        .claim_due("node-b", 500, 90_000, 1, &["g".to_owned()])
        .await
        .unwrap();
    assert_eq!(ids(&first), std::slice::from_ref(&early.id));
    assert_eq!((first[0].was, first[0].retried), (Status::Waiting, 0));
    let rest = store
        .claim_due("node-b", 500, 90_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(ids(&rest), [queued.id.clone(), late.id.clone()]);
    assert_eq!(rest[0].was, Status::Queued);
    assert!(
        store
            .claim_due("node-c", 500, 90_000, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let mut running = store.participant(&late.id).await.unwrap().unwrap();
    assert_eq!(running.status, Status::Running);
    // Each claim carries the participant as claimed, as a read after it would find them,
    // with the person People keeps now.
    assert_eq!(running.person.attributes.get("tier"), None);
    running.person = kept.clone();
    assert_eq!(rest[1].state.as_ref(), Some(&running));
    let mut early_now = store.participant(&early.id).await.unwrap().unwrap();
    early_now.person = kept;
    assert_eq!(first[0].state.as_ref(), Some(&early_now));
    assert_eq!(early_now.waiting_until, early.waiting_until);
    // Their leases fence as single claims do.
    assert!(matches!(
        store.renew(&rest[1].lease, 95_000).await,
        Ok(lease) if lease.expires_at == 95_000
    ));
}

/// An event wakes exactly the participants waiting on its key, hands them the event and
/// makes them due now; deadlines on a key move together.
pub async fn wake_by_key(store: &impl StateStore) {
    let a = waiting(
        store,
        participant("f", "w"),
        None,
        Some("inbound:sms:phone:1:x"),
    )
    .await;
    let b = waiting(
        store,
        participant("f", "w"),
        Some(900),
        Some("inbound:sms:phone:1:x"),
    )
    .await;
    let other = waiting(
        store,
        participant("f", "w"),
        None,
        Some("inbound:sms:phone:2:x"),
    )
    .await;
    store
        .set_deadline("inbound:sms:phone:2:x", 777)
        .await
        .unwrap();
    assert_eq!(
        store
            .participant(&other.id)
            .await
            .unwrap()
            .unwrap()
            .waiting_until,
        Some(777)
    );
    let event = json!({"text": "YES"});
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(
        store
            .wake("inbound:sms:phone:1:x", &event, 50)
            .await
            .unwrap(),
        expected
    );
    for id in [&a.id, &b.id] {
        let p = store.participant(id).await.unwrap().unwrap();
        assert_eq!((p.event, p.waiting_until), (Some(event.clone()), Some(50)));
    }
    let untouched = store.participant(&other.id).await.unwrap().unwrap();
    assert_eq!(untouched.event, None);
    assert!(store.wake("nobody", &event, 50).await.unwrap().is_empty());
    let due = store.due(60, 10, &[]).await.unwrap();
    assert!(due.contains(&a.id) && due.contains(&b.id) && !due.contains(&other.id));

    // Waking while saving what ended: both are written.
    let ended = Record {
        kind: "session".into(),
        id: "s-1".into(),
        key: "sms:2".into(),
        status: "ended".into(),
        body: json!({"ended": "closed"}),
    };
    assert_eq!(
        store
            .wake_saving("inbound:sms:phone:2:x", &event, 70, &ended)
            .await
            .unwrap(),
        std::slice::from_ref(&other.id)
    );
    assert_eq!(store.record("session", "s-1").await.unwrap(), Some(ended));
    let woken = store.participant(&other.id).await.unwrap().unwrap();
    assert_eq!(woken.event, Some(event));
}

/// Participants a step enters are written with it, queued, and due at once.
pub async fn steps_enter_participants_atomically(store: &impl StateStore) {
    let mut p = participant("f", "add");
    let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
    let mut entered = participant("g", "start");
    entered.status = Status::Queued;
    p.current = None;
    p.status = Status::Completed;
    p.steps = 1;
    let stale = Lease {
        epoch: lease.epoch + 1,
        ..lease.clone()
    };
    let write = StepWrite {
        entered: true,
        enter: std::slice::from_ref(&entered),
        ..StepWrite::default()
    };
    assert!(
        store
            .record_step(&stale, &p, &entry("add", Some("next")), write)
            .await
            .is_err()
    );
    assert_eq!(
        store.participant(&entered.id).await.unwrap(),
        None,
        "all or nothing"
    );
    store
        .record_step(&lease, &p, &entry("add", Some("next")), write)
        .await
        .unwrap();
    assert_eq!(
        store.participant(&entered.id).await.unwrap(),
        Some(entered.clone())
    );
    assert_eq!(store.due(0, 10, &[]).await.unwrap(), [entered.id]);
}

/// Participants admitted together are stored whole, queued, and due in the order given.
pub async fn admitted_participants_are_kept_whole_and_due_in_order(store: &impl StateStore) {
    let batch: Vec<ParticipantState> = (0..40)
        .map(|i| {
            let mut p = participant("f", "start");
            p.person.id = format!("person-{i}");
            p.variables.insert("i".into(), json!(i));
            p.flow_version = 1 + i % 3;
            match i % 4 {
                1 => {
                    p.element_state = Some(ElementState {
                        reason: "retry".into(),
                        data: json!({"attempt": i}),
                    })
                }
                2 => p.event = Some(json!({"text": format!("hi {i}")})),
                3 => p.wait_key = Some(format!("key-{i}")),
                _ => {}
            }
            p.status = Status::Queued;
            p
        })
        .collect();
    assert_eq!(store.insert_queued(&batch, None).await.unwrap(), None);
    for p in &batch {
        assert_eq!(store.participant(&p.id).await.unwrap().as_ref(), Some(p));
    }
    let ids: Vec<String> = batch.iter().map(|p| p.id.clone()).collect();
    assert_eq!(store.due(0, 100, &[]).await.unwrap(), ids);
}

/// A batch enters queued and due at once; a request whose idempotency key was seen in its
/// scope enters nobody and gets the first answer; the same key in another scope is new.
pub async fn participants_enter_once_per_idempotency_key(store: &impl StateStore) {
    let batch = [participant("f", "start"), participant("f", "start")];
    let answer = json!({"ids": [batch[0].id, batch[1].id]});
    let request = |scope, fingerprint, answer| IdempotentRequest {
        scope,
        key: "k-1",
        fingerprint,
        answer,
        at: 1_000,
    };
    let first = store
        .insert_queued(&batch, Some(request("flow:f", "sha-a", &answer)))
        .await
        .unwrap();
    assert_eq!(first, None);
    for p in &batch {
        let stored = store.participant(&p.id).await.unwrap().unwrap();
        assert_eq!(stored.status, Status::Queued);
        assert_eq!(stored.current.as_deref(), Some("start"));
    }
    let mut due = store.due(0, 10, &[]).await.unwrap();
    due.sort();
    let mut ids = vec![batch[0].id.clone(), batch[1].id.clone()];
    ids.sort();
    assert_eq!(due, ids);

    let retry = [participant("f", "start")];
    let other = json!({"ids": [retry[0].id]});
    let again = store
        .insert_queued(&retry, Some(request("flow:f", "sha-b", &other)))
        .await
        .unwrap();
    assert_eq!(
        again,
        Some(EarlierAnswer {
            fingerprint: "sha-a".into(),
            answer: answer.clone(),
        })
    );
    assert_eq!(store.participant(&retry[0].id).await.unwrap(), None);
    assert_eq!(
        store.idempotent_answer("flow:f", "k-1").await.unwrap(),
        Some(EarlierAnswer {
            fingerprint: "sha-a".into(),
            answer: answer.clone(),
        })
    );
    assert_eq!(
        store.idempotent_answer("flow:f", "k-2").await.unwrap(),
        None
    );

    let elsewhere = store
        .insert_queued(&retry, Some(request("flow:g", "sha-b", &other)))
        .await
        .unwrap();
    assert_eq!(elsewhere, None, "keys are unique within their scope only");
    let without_key = [participant("f", "start")];
    assert_eq!(store.insert_queued(&without_key, None).await.unwrap(), None);
    assert!(
        store
            .participant(&without_key[0].id)
            .await
            .unwrap()
            .is_some()
    );
}

/// A run of steps is written in one go: entries in order with consecutive seq numbers, each
/// step's counters and entrants; under a lost lease none of it.
pub async fn a_run_of_steps_is_written_together(store: &impl StateStore) {
    let mut p = participant("f", "a");
    let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
    let mut entered = participant("g", "start");
    entered.status = Status::Queued;
    p.current = None;
    p.status = Status::Completed;
    p.steps = 3;
    let (a, b, c) = (
        entry("a", Some("next")),
        entry("b", Some("yes")),
        entry("c", None),
    );
    let write = |enter| StepWrite {
        entered: true,
        enter,
        ..StepWrite::default()
    };
    let steps = [
        StepRecord {
            entry: &a,
            write: write(&[]),
        },
        StepRecord {
            entry: &b,
            write: write(std::slice::from_ref(&entered)),
        },
        StepRecord {
            entry: &c,
            write: write(&[]),
        },
    ];
    let stale = Lease {
        epoch: lease.epoch + 1,
        ..lease.clone()
    };
    assert!(matches!(
        store.record_steps(&stale, &p, &steps).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(store.journey(&p.id).await.unwrap().is_empty(), "nothing");
    assert_eq!(store.participant(&entered.id).await.unwrap(), None);
    assert!(store.element_counts("f", None).await.unwrap().is_empty());

    store.record_steps(&lease, &p, &steps).await.unwrap();
    let journey = store.journey(&p.id).await.unwrap();
    let elements: Vec<(u64, &str)> = journey
        .iter()
        .map(|e| (e.seq, e.element_id.as_str()))
        .collect();
    assert_eq!(elements, [(1, "a"), (2, "b"), (3, "c")]);
    let counts = store.element_counts("f", None).await.unwrap();
    assert_eq!(counts["b"].entered, 1);
    assert_eq!(counts["b"].exits, BTreeMap::from([("yes".to_owned(), 1)]));
    assert_eq!(store.participant(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.participant(&entered.id).await.unwrap(), Some(entered));
}

/// A participant inserted with its first steps is stored as they left it, with their
/// journey and counts: claimed while it runs, unclaimed once it waits or ends.
pub async fn a_participant_is_inserted_with_its_first_steps(store: &impl StateStore) {
    let (a, b) = (entry("a", Some("next")), entry("b", Some("yes")));
    let steps = [&a, &b].map(|entry| StepRecord {
        entry,
        write: StepWrite {
            entered: true,
            ..StepWrite::default()
        },
    });
    // Still running (a step with outside effects comes next): claimed, and its lease holds.
    let mut running = participant("f", "a");
    running.current = Some("c".into());
    running.steps = 2;
    let lease = store
        .insert_with_steps(&running, OWNER, 60_000, &steps)
        .await
        .unwrap();
    assert_eq!(
        (lease.participant.as_str(), lease.owner.as_str()),
        (running.id.as_str(), OWNER)
    );
    assert_eq!(
        store.participant(&running.id).await.unwrap(),
        Some(running.clone())
    );
    assert!(
        store
            .claim(&running.id, "node-b", 1_000, 61_000)
            .await
            .unwrap()
            .is_none()
    );
    running.status = Status::Completed;
    running.current = None;
    store
        .record_steps(
            &lease,
            &running,
            &[StepRecord {
                entry: &entry("c", None),
                write: StepWrite::default(),
            }],
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = store
        .journey(&running.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);

    // Waiting after them: unclaimed, due when its wait ends, and claimed then as any other.
    let mut waiting = participant("f", "a");
    waiting.current = Some("wait".into());
    waiting.status = Status::Waiting;
    waiting.waiting_until = Some(5_000);
    waiting.steps = 2;
    store
        .insert_with_steps(&waiting, OWNER, 60_000, &steps)
        .await
        .unwrap();
    assert_eq!(
        store.participant(&waiting.id).await.unwrap(),
        Some(waiting.clone())
    );
    assert_eq!(store.journey(&waiting.id).await.unwrap().len(), 2);
    let claim = store
        .claim(&waiting.id, "node-b", 5_000, 65_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.was, Status::Waiting);
    let counts = store.element_counts("f", None).await.unwrap();
    assert_eq!(counts["a"].entered, 2);
    assert_eq!(counts["b"].exits, BTreeMap::from([("yes".to_owned(), 2)]));
}

/// Work a step leaves (a record) is written with the step or, when its lease was lost, not
/// at all; finishing it appends its report and removes it, once.
pub async fn work_left_by_a_step_is_kept_with_it_and_finished_once(store: &impl StateStore) {
    let mut p = participant("f", "send");
    let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
    p.current = None;
    p.status = Status::Completed;
    p.steps = 1;
    let work = Record {
        kind: "background".into(),
        id: format!("{}:1", p.id),
        key: p.id.clone(),
        status: "pending".into(),
        body: json!({"send": "later"}),
    };
    let write = StepWrite {
        records: std::slice::from_ref(&work),
        ..StepWrite::default()
    };
    let stale = Lease {
        epoch: lease.epoch + 1,
        ..lease.clone()
    };
    let step = entry("send", Some("next"));
    assert!(matches!(
        store.record_step(&stale, &p, &step, write).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(store.record("background", &work.id).await.unwrap(), None);
    store.record_step(&lease, &p, &step, write).await.unwrap();
    assert_eq!(
        store
            .records("background", None, Some("pending"), None)
            .await
            .unwrap(),
        std::slice::from_ref(&work)
    );
    let report = entry("send", None);
    assert!(
        store
            .finish_record(&p.id, &report, "background", &work.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_record(&p.id, &report, "background", &work.id)
            .await
            .unwrap()
    );
    assert_eq!(store.record("background", &work.id).await.unwrap(), None);
    let seqs: Vec<u64> = store
        .journey(&p.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2], "one report");
}

/// A background entry takes the next seq after the steps already written.
pub async fn background_entries_take_the_next_seq(store: &impl StateStore) {
    let p = waiting(store, participant("f", "w"), Some(10), None).await;
    store
        .append_journey(&p.id, &entry("call", None))
        .await
        .unwrap();
    let seqs: Vec<u64> = store
        .journey(&p.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
}

/// A flow's participants by status, oldest first.
pub async fn participants_of_a_flow_by_status(store: &impl StateStore) {
    let w1 = waiting(store, participant("f", "w"), Some(10), None).await;
    let _elsewhere = waiting(store, participant("g", "w"), Some(10), None).await;
    let running = store
        .insert_claimed(&participant("f", "a"), OWNER, 60_000)
        .await
        .unwrap();
    let w2 = waiting(store, participant("f", "w"), Some(10), None).await;
    assert_eq!(
        store
            .participants_of("f", &[Status::Waiting, Status::Queued])
            .await
            .unwrap(),
        [w1.id, w2.id]
    );
    assert_eq!(
        store
            .participants_of("f", &[Status::Running])
            .await
            .unwrap(),
        [running.participant]
    );
}

/// A flow's participants are counted by status, failures since a time apart; a person's
/// participants are found in any flow, newest first.
pub async fn participants_are_counted_by_status_and_found_by_person(store: &impl StateStore) {
    // Ends `p` with `status` in a step that ended at `at`.
    async fn ended(store: &impl StateStore, mut p: ParticipantState, status: Status, at: i64) {
        let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
        p.status = status;
        p.current = None;
        p.steps = 1;
        let step = JourneyEntry {
            at_ms: at,
            ..entry("a", None)
        };
        store
            .record_step(&lease, &p, &step, StepWrite::default())
            .await
            .unwrap();
    }
    let early = participant("f", "a");
    ended(store, early.clone(), Status::Failed, 1_000).await;
    ended(store, participant("f", "a"), Status::Failed, 5_000).await;
    ended(store, participant("f", "a"), Status::Completed, 5_000).await;
    let w = waiting(store, participant("f", "w"), Some(10), None).await;
    let mut grace = participant("g", "a");
    grace.person.id = "grace".into();
    ended(store, grace, Status::Failed, 5_000).await;

    let counts = store.status_counts("f", 2_000).await.unwrap();
    assert_eq!(
        counts,
        StatusCounts {
            waiting: 1,
            completed: 1,
            failed: 2,
            failed_since: 1,
            ..StatusCounts::default()
        }
    );
    assert_eq!(
        store.status_counts("none", 0).await.unwrap(),
        StatusCounts::default()
    );
    let ada = store.participants_of_person("ada", 10).await.unwrap();
    assert_eq!(ada.len(), 4, "{ada:?}");
    assert_eq!(ada[0], w.id, "newest first");
    assert_eq!(ada[3], early.id);
    assert_eq!(
        store.participants_of_person("ada", 2).await.unwrap(),
        ada[..2]
    );
    assert_eq!(
        store
            .participants_of_person("grace", 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .participants_of_person("nobody", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Slots of a queue are spaced by the interval and never handed out twice; queues are
/// independent; a holder asking again gets its own slot back.
pub async fn slots_are_spaced(store: &impl StateStore) {
    assert_eq!(
        store.take_slot("q", "a:1", 1_000, 100).await.unwrap(),
        1_000
    );
    assert_eq!(
        store.take_slot("q", "b:1", 1_000, 100).await.unwrap(),
        1_100
    );
    assert_eq!(
        store.take_slot("q", "c:1", 1_050, 100).await.unwrap(),
        1_200
    );
    assert_eq!(
        store.take_slot("other", "a:1", 1_000, 100).await.unwrap(),
        1_000
    );
    // A step that runs again after a crash gets the slot it took; the queue does not move.
    assert_eq!(
        store.take_slot("q", "b:1", 1_060, 100).await.unwrap(),
        1_100
    );
    assert_eq!(
        store.take_slot("q", "d:1", 1_060, 100).await.unwrap(),
        1_300
    );
    assert_eq!(
        store.take_slot("q", "e:1", 5_000, 100).await.unwrap(),
        5_000
    );
}

/// Waiting participants are counted by the reason their element gives; a state without data
/// reads back as it was written.
pub async fn waiting_is_counted_by_reason(store: &impl StateStore) {
    for reason in ["queued", "queued", "window"] {
        let mut p = participant("f", "call");
        p.element_state = Some(ElementState::reason(reason));
        waiting(store, p, Some(10), None).await;
    }
    assert_eq!(store.count_waiting("f", "call", "queued").await.unwrap(), 2);
    assert_eq!(store.count_waiting("f", "call", "window").await.unwrap(), 1);
    assert_eq!(
        store.count_waiting("f", "other", "queued").await.unwrap(),
        0
    );
    assert_eq!(store.count_waiting("g", "call", "queued").await.unwrap(), 0);
    let mut p = participant("f", "call");
    p.element_state = Some(ElementState::reason("window"));
    let p = waiting(store, p, Some(10), None).await;
    assert_eq!(store.participant(&p.id).await.unwrap(), Some(p));
}

/// People: by id and by any contact; a contact belongs to one person; an update re-indexes
/// the contacts.
pub async fn people_are_found_by_any_contact(store: &impl StateStore) {
    let mut ada = Person {
        id: "ada".into(),
        phones: vec!["+385 91 123 4567".into()],
        emails: vec!["Ada@Example.com".into()],
        ..Default::default()
    };
    store.save_person(&ada).await.unwrap();
    let by_phone = Contact::phone("00385911234567").unwrap().key();
    let by_email = Contact::email("ada@example.com").unwrap().key();
    assert_eq!(store.person("ada").await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store.person_by_contact(&by_phone).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store.person_by_contact(&by_email).await.unwrap(),
        Some(ada.clone())
    );
    let bob = Person {
        id: "bob".into(),
        phones: vec!["385911234567".into()],
        ..Default::default()
    };
    let err = store.save_person(&bob).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.person("bob").await.unwrap(), None, "nothing written");
    ada.phones.clear();
    store.save_person(&ada).await.unwrap();
    assert_eq!(store.person_by_contact(&by_phone).await.unwrap(), None);
    store.save_person(&bob).await.unwrap();
    assert_eq!(
        store
            .person_by_contact(&by_phone)
            .await
            .unwrap()
            .map(|p| p.id),
        Some("bob".into())
    );
    assert_eq!(store.person("nobody").await.unwrap(), None);
}

/// Records: replaced by kind and id; listed by key and status in insertion order; `last`
/// keeps the newest.
pub async fn records_by_key_status_and_recency(store: &impl StateStore) {
    let record = |id: &str, key: &str, status: &str, n: i64| Record {
        kind: "conversation".into(),
        id: id.into(),
        key: key.into(),
        status: status.into(),
        body: json!({ "n": n }),
    };
    for (i, (key, status)) in [
        ("k1", "open"),
        ("k2", "open"),
        ("k1", "closed"),
        ("k1", "open"),
    ]
    .iter()
    .enumerate()
    {
        store
            .put_record(&record(&format!("c{i}"), key, status, i as i64))
            .await
            .unwrap();
    }
    store
        .put_record(&Record {
            kind: "message".into(),
            ..record("c0", "k1", "", 99)
        })
        .await
        .unwrap();
    let ids = |rs: Vec<Record>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .records("conversation", Some("k1"), None, None)
            .await
            .unwrap()),
        ["c0", "c2", "c3"]
    );
    assert_eq!(
        ids(store
            .records("conversation", Some("k1"), Some("open"), None)
            .await
            .unwrap()),
        ["c0", "c3"]
    );
    assert_eq!(
        ids(store
            .records("conversation", None, None, Some(2))
            .await
            .unwrap()),
        ["c2", "c3"]
    );
    store
        .put_record(&record("c1", "k1", "closed", 7))
        .await
        .unwrap();
    let c1 = store.record("conversation", "c1").await.unwrap().unwrap();
    assert_eq!((c1.key.as_str(), c1.status.as_str()), ("k1", "closed"));
    assert_eq!(c1.parse::<serde_json::Value>().unwrap(), json!({"n": 7}));
    assert_eq!(
        store.record("message", "c0").await.unwrap().unwrap().body,
        json!({"n": 99})
    );
    assert_eq!(store.record("conversation", "nope").await.unwrap(), None);
}

/// Holds: one owner at a time does a piece of work; a hold renews, expires and is let go.
pub async fn holds_are_exclusive_until_they_expire(store: &impl StateStore) {
    assert!(
        store
            .hold("background", "p-1:3", "node-a", 1_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .hold("background", "p-1:3", "node-b", 2_000, 6_000)
            .await
            .unwrap(),
        "held by node-a"
    );
    assert!(
        store
            .hold("background", "p-2:1", "node-b", 2_000, 6_000)
            .await
            .unwrap(),
        "other work is free"
    );
    assert!(
        store
            .hold("message", "p-1:3", "node-b", 2_000, 6_000)
            .await
            .unwrap(),
        "the same id of another kind is free"
    );
    assert!(
        store
            .hold("background", "p-1:3", "node-a", 4_000, 9_000)
            .await
            .unwrap(),
        "the owner renews"
    );
    assert!(
        !store
            .hold("background", "p-1:3", "node-b", 8_999, 12_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .hold("background", "p-1:3", "node-b", 9_000, 12_000)
            .await
            .unwrap(),
        "an expired hold is taken over"
    );
    assert!(
        !store
            .hold("background", "p-1:3", "node-a", 9_500, 14_000)
            .await
            .unwrap()
    );
    store.let_go("background", "p-1:3", "node-a").await.unwrap();
    assert!(
        !store
            .hold("background", "p-1:3", "node-a", 9_500, 14_000)
            .await
            .unwrap(),
        "letting go of another's hold does nothing"
    );
    store.let_go("background", "p-1:3", "node-b").await.unwrap();
    assert!(
        store
            .hold("background", "p-1:3", "node-a", 9_500, 14_000)
            .await
            .unwrap()
    );
}

/// Retention: finished participants whose last step is old go with their journeys, and
/// old records and idempotency keys that are done; live participants, recent ones, records
/// still at work and the analytics counters stay.
pub async fn what_is_done_is_pruned_and_the_rest_kept(store: &impl StateStore) {
    let finish = |at: i64| {
        let mut e = entry("a", None);
        e.at_ms = at;
        e
    };
    let mut ids = Vec::new();
    for at in [1_000, 5_000] {
        let mut p = participant("f", "a");
        let lease = store.insert_claimed(&p, OWNER, 60_000).await.unwrap();
        p.current = None;
        p.status = Status::Completed;
        p.steps = 1;
        let write = StepWrite {
            entered: true,
            ..StepWrite::default()
        };
        store
            .record_step(&lease, &p, &finish(at), write)
            .await
            .unwrap();
        ids.push(p.id);
    }
    let live = waiting(store, participant("f", "a"), Some(9_000), None).await;
    let counts = store.element_counts("f", None).await.unwrap();

    assert_eq!(store.prune_finished(2_000, 10).await.unwrap(), 1);
    assert_eq!(store.participant(&ids[0]).await.unwrap(), None);
    assert!(store.journey(&ids[0]).await.unwrap().is_empty());
    assert!(store.participant(&ids[1]).await.unwrap().is_some());
    assert_eq!(store.journey(&ids[1]).await.unwrap().len(), 1);
    assert!(store.participant(&live.id).await.unwrap().is_some());
    assert_eq!(store.element_counts("f", None).await.unwrap(), counts);
    assert_eq!(store.prune_finished(2_000, 10).await.unwrap(), 0);

    let message = |id: &str, status: &str, at: i64| Record {
        kind: "message".into(),
        id: id.into(),
        key: "c".into(),
        status: status.into(),
        body: json!({"at": at}),
    };
    for r in [
        message("old-sent", "sent", 100),
        message("old-pending", "pending", 100),
        message("new-sent", "sent", 3_000),
    ] {
        store.put_record(&r).await.unwrap();
    }
    let done = ["sent", "failed", ""];
    assert_eq!(
        store
            .prune_records("message", &done, "at", 2_000, 10)
            .await
            .unwrap(),
        1
    );
    let left: Vec<String> = store
        .records("message", None, None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["old-pending", "new-sent"]);

    let answer = json!({"participants": []});
    let request = IdempotentRequest {
        scope: "s",
        key: "k",
        fingerprint: "f",
        answer: &answer,
        at: 100,
    };
    store.insert_queued(&[], Some(request)).await.unwrap();
    assert_eq!(store.prune_idempotency_keys(100, 10).await.unwrap(), 0);
    assert_eq!(store.prune_idempotency_keys(200, 10).await.unwrap(), 1);
    assert_eq!(store.idempotent_answer("s", "k").await.unwrap(), None);
}

/// A due participant whose stored row cannot be read is left out of a claim, which claims
/// the others; once its lease expires it is due again. Not in the macro's list: `damage`
/// spoils the row of the participant whose id it is given, as only its backend can (its
/// variables made a JSON array).
pub async fn a_damaged_row_is_left_out_of_a_claim<F>(
    store: &impl StateStore,
    damage: impl FnOnce(String) -> F,
) where
    F: std::future::Future<Output = ()>,
{
    let queued: Vec<ParticipantState> = (0..3)
        .map(|i| {
            let mut p = ParticipantState::new("f", 1, "a", Person::default(), BTreeMap::new());
            p.id = format!("p-{i}");
            p
        })
        .collect();
    store.insert_queued(&queued, None).await.unwrap();
    damage("p-1".to_owned()).await;
    let claims = store
        .claim_due("node-a", 100, 1_000, 10, &[])
        .await
        .unwrap();
    let ids: Vec<&str> = claims
        .iter()
        .map(|c| c.lease.participant.as_str())
        .collect();
    assert_eq!(ids, ["p-0", "p-2"]);
    // Once the leases expire, all three are due again: it is left out again, the others
    // are taken over.
    let again = store
        .claim_due("node-b", 1_000, 2_000, 10, &[])
        .await
        .unwrap();
    let ids: Vec<&str> = again.iter().map(|c| c.lease.participant.as_str()).collect();
    assert_eq!(ids, ["p-0", "p-2"]);
    let participant = store.participant("p-1").await;
    assert!(
        matches!(participant, Err(StoreError::Corrupt { .. })),
        "{participant:?}"
    );
}
