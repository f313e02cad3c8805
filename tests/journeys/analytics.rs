//! Analytics per element: entered, per exit, waiting now.

use super::*;

#[tokio::test]
async fn analytics_count_entries_exits_and_waiting_per_element() {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        engine,
        inbound,
        clock,
    } = setup(dir.path()).await;
    deploy(&engine, survey()).await;
    for _ in 0..3 {
        engine
            .start("survey", person(), BTreeMap::new())
            .await
            .unwrap();
    }
    let by_id = async |engine: &Engine| -> BTreeMap<String, Value> {
        engine
            .analytics("survey")
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.element_id.clone(), serde_json::to_value(&a).unwrap()))
            .collect()
    };
    let a = by_id(&engine).await;
    assert_eq!(a["ask"]["entered"], json!(3));
    assert_eq!(a["ask"]["waiting"], json!(3));
    assert_eq!(a["ask"]["exits"], json!({}));
    inbound.receive(whatsapp("yes")).await.unwrap();
    clock.advance_ms(3 * 3_600_000);
    engine
        .start(
            "survey",
            Person {
                phones: vec!["+385911234567".into()],
                ..Person::default()
            },
            BTreeMap::new(),
        )
        .await
        .unwrap();
    let a = by_id(&engine).await;
    assert_eq!(
        a["ask"]["entered"],
        json!(4),
        "a resumed participant is not counted twice"
    );
    assert_eq!(a["ask"]["exits"], json!({"yes": 3}));
    assert_eq!(a["ask"]["waiting"], json!(1));
    assert_eq!(a["end"]["entered"], json!(3));
    assert_eq!(a["ask"]["element_type"], json!("evaluate-inbound"));
}
