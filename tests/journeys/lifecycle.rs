//! Flow lifecycle: who may enter a draft, active, finished or canceled flow.

use super::*;

#[tokio::test]
async fn flow_lifecycle_controls_who_may_enter_and_cancel_stops_waiting_participants() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock, .. } = setup(dir.path()).await;
    let mut draft = loyalty("draft");
    draft["entry_points"] = json!([{"type": "api", "start": "hold"}]);
    deploy(&engine, draft).await;
    let err = engine
        .start("loyalty", person(), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::FlowNotActive { .. }), "{err}");
    engine
        .set_flow_status("loyalty", FlowStatus::Active)
        .await
        .unwrap();
    let waiting = engine
        .start("loyalty", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(waiting.status, Status::Waiting);
    let err = engine
        .set_flow_status("loyalty", FlowStatus::Draft)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot go from active to draft"), "{err}");

    // Finished: nobody new enters, those inside finish.
    engine
        .set_flow_status("loyalty", FlowStatus::Finished)
        .await
        .unwrap();
    assert!(
        engine
            .start("loyalty", person(), BTreeMap::new())
            .await
            .is_err()
    );
    clock.advance_ms(86_400_000);
    let done = engine.resume_due().await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].status, Status::Completed);

    // Canceled: waiting participants stop, with a journey entry; the status survives a restart.
    let mut other = loyalty("active");
    other["id"] = json!("winback");
    other["entry_points"] = json!([{"type": "api", "start": "hold"}]);
    deploy(&engine, other).await;
    let p = engine
        .start("winback", person(), BTreeMap::new())
        .await
        .unwrap();
    engine
        .set_flow_status("winback", FlowStatus::Canceled)
        .await
        .unwrap();
    let p = engine.participant(&p.id).await.unwrap();
    assert_eq!(p.status, Status::Canceled);
    let last = engine.journey(&p.id).await.unwrap().pop().unwrap();
    assert_eq!(last.error.as_deref(), Some("flow \"winback\" was canceled"));
    drop(engine);
    let again = setup_at(dir.path(), T0 + 2 * 86_400_000).await;
    assert_eq!(
        again.engine.flow_def("winback").unwrap().status,
        FlowStatus::Canceled
    );
    assert!(again.engine.resume_due().await.unwrap().is_empty());
}

/// A stale list of due participants (read while one was queued, used after it started
/// waiting) must not resume a wait that has not ended: the service's background runs and its
/// scheduler can race this way.
#[tokio::test]
async fn a_wait_that_has_not_ended_is_not_resumed_by_a_stale_due_list() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { engine, clock, .. } = setup(dir.path()).await;
    deploy(
        &engine,
        json!({
            "id": "later", "name": "Later",
            "entry_points": [{"type": "api", "start": "w"}],
            "elements": [
                {"id": "w", "type": "wait", "config": {"duration": "1d"}, "exits": {"next": "e"}},
                {"id": "e", "type": "exit"}
            ]
        }),
    )
    .await;
    let p = engine
        .start("later", person(), BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(p.status, Status::Waiting);
    let ran = engine.follow_up(vec![p.id.clone()]).await.unwrap();
    assert!(ran.is_empty(), "{ran:?}");
    let after = engine.participant(&p.id).await.unwrap();
    assert_eq!(after.status, Status::Waiting);
    assert_eq!(after.current.as_deref(), Some("w"));
    assert_eq!(after.waiting_until, p.waiting_until);
    assert_eq!(engine.journey(&p.id).await.unwrap().len(), 1);
    // Its time comes: now it resumes.
    clock.advance_ms(86_400_000);
    let resumed = engine.resume_due().await.unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].status, Status::Completed);
}
