//! The storage API's conformance suite on a real PostgreSQL server, one per test.

mod pg;

use flowhost_store_postgres::PostgresStore;

async fn fresh() -> (PostgresStore, pg::Server) {
    let server = tokio::task::spawn_blocking(pg::Server::start).await.unwrap();
    let store = PostgresStore::connect(&server.url).await.unwrap();
    (store, server)
}

flowhost_store::conformance_tests!(fresh);
