//! The storage API's conformance suite on a real PostgreSQL server, one per test.

use flowhost_store_postgres::PostgresStore;
use flowhost_store_postgres::test_server::Server;

async fn fresh() -> (PostgresStore, Server) {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let store = PostgresStore::connect(&server.url).await.unwrap();
    (store, server)
}

flowhost_store::conformance_tests!(fresh);

/// Wake-ups between nodes (`LISTEN`/`NOTIFY`): work one node commits wakes the others, not
/// itself, and a node whose connection dropped says so once it listens again.
#[tokio::test]
async fn work_committed_by_one_node_wakes_the_other_nodes() {
    use flowhost_store::{FlowStore, ParticipantState, ParticipantStore};
    use std::time::Duration;
    use tokio::sync::watch::Receiver;
    use tokio::time::timeout;

    async fn woken(signals: &mut Receiver<u64>, what: &str) {
        timeout(Duration::from_secs(10), signals.changed())
            .await
            .unwrap_or_else(|_| panic!("not woken: {what}"))
            .unwrap();
    }
    let (a, server) = fresh().await;
    let b = PostgresStore::connect(&server.url).await.unwrap();
    let mut at_a = a.work_signals().unwrap();
    let mut at_b = b.work_signals().unwrap();
    woken(&mut at_a, "a listens").await;
    woken(&mut at_b, "b listens").await;

    a.save_flow("hello", 1, "{}").await.unwrap();
    woken(&mut at_b, "a flow saved").await;
    let p = ParticipantState::new("hello", 1, "start", Default::default(), Default::default());
    a.insert_queued(&[p], None).await.unwrap();
    woken(&mut at_b, "a participant queued").await;
    // Nothing woken, nothing to tell.
    assert!(
        a.wake("no-one-waits", &serde_json::json!({}), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        timeout(Duration::from_millis(500), at_b.changed())
            .await
            .is_err(),
        "woken for nothing"
    );
    assert!(
        timeout(Duration::from_millis(100), at_a.changed())
            .await
            .is_err(),
        "a node is not woken by its own work"
    );

    // The database goes away and comes back: b listens again and looks for missed work.
    let _server = tokio::task::spawn_blocking(move || {
        server.stop();
        server.restart();
        server
    })
    .await
    .unwrap();
    woken(&mut at_b, "b listens again").await;
}

/// A database of before the counters were spread over rows keeps its analytics: the old
/// table's counts move over on the next start, and reads add every row of a counter up.
#[tokio::test]
async fn counters_of_an_older_schema_are_moved_and_added_up() {
    use flowhost_store::ParticipantStore;

    let (store, server) = fresh().await;
    let (client, connection) = tokio_postgres::connect(&server.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE version_counts (
                 flow_id TEXT NOT NULL, version BIGINT NOT NULL, element_id TEXT NOT NULL,
                 exit TEXT NOT NULL, n BIGINT NOT NULL,
                 PRIMARY KEY (flow_id, version, element_id, exit));
             INSERT INTO version_counts VALUES ('hello', 1, 'greet', '', 5), ('hello', 1, 'greet', 'next', 4);
             INSERT INTO step_counts VALUES ('hello', 1, 'greet', '', 3, 2);",
        )
        .await
        .unwrap();
    drop(store);
    let store = PostgresStore::connect(&server.url).await.unwrap();
    let counts = store.element_counts("hello", Some(1)).await.unwrap();
    assert_eq!(counts["greet"].entered, 7);
    assert_eq!(counts["greet"].exits["next"], 4);
    let old: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'version_counts'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "the old table is gone");
}

/// One damaged participant row does not stop due claims (the suite's scenario).
#[tokio::test]
async fn a_damaged_row_is_left_out_of_a_claim() {
    let (store, server) = fresh().await;
    let damage = |id: String| {
        let url = server.url.clone();
        async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .execute(
                    "UPDATE participants SET variables = '[1]' WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
        }
    };
    flowhost_store::conformance::a_damaged_row_is_left_out_of_a_claim(&store, damage).await;
}
