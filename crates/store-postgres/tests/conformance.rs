//! The storage API's conformance suite on a real PostgreSQL server, one per test.

use flowhost_store_postgres::PostgresStore;
use flowhost_store_postgres::test_server::Server;

async fn fresh() -> (PostgresStore, Server) {
    let server = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let store = PostgresStore::connect(&server.url).await.unwrap();
    (store, server)
}

flowhost_store::conformance_tests!(fresh);
