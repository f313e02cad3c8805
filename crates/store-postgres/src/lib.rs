//! The storage API on PostgreSQL, for several flowhost nodes sharing one database.
//!
//! Hand-written SQL, as the SQLite backend's, through a `deadpool-postgres` pool of
//! `tokio-postgres` connections with cached prepared statements. It passes the same
//! conformance suite (`flowhost_store::conformance`) as the SQLite store. JSON documents are
//! kept as text, as there; the SQL stays close to what other PostgreSQL-compatible engines
//! accept.
#![deny(missing_docs)]

mod listen;
mod participants;
mod records;
mod rows;
mod schema;
#[cfg(feature = "test-server")]
pub mod test_server;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use flowhost_store::{FlowStore, QueueStore, SavedFlow, StoreError};
use flowhost_types::clock::Millis;
use std::sync::{Arc, OnceLock};
use tokio_postgres::NoTls;

/// Connections a node keeps open.
const POOL_SIZE: usize = 16;

/// Participants, journeys, people and records in a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// The database, for errors (no password).
    name: Arc<str>,
    /// This store's name in the notifications it sends (unique per process and store).
    node: Arc<str>,
    /// Where to connect to listen for other nodes' notifications.
    config: tokio_postgres::Config,
    /// Listening for them, from the first time a scheduler asks.
    listener: Arc<OnceLock<listen::Listener>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

fn db<E: std::error::Error + Send + Sync + 'static>(
    context: &'static str,
) -> impl Fn(E) -> StoreError {
    move |e| StoreError::database(context, e)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`; a password is
    /// best given in `PGPASSWORD`), and creates the schema if it is not there yet.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::database("reading the PostgreSQL URL", e))?;
        // The password stays out of flowhost.toml.
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        let name = format!(
            "{}@{:?}:{:?}/{}",
            config.get_user().unwrap_or_default(),
            config.get_hosts(),
            config.get_ports(),
            config.get_dbname().unwrap_or_default()
        );
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::database("building the connection pool", e))?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let store = PostgresStore {
            pool,
            name: name.into(),
            node: format!("{}-{started:x}", std::process::id()).into(),
            config,
            listener: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Creates the schema under an advisory lock, so nodes starting together do it once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("creating the schema"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::SCHEMA_LOCK])
            .await
            .map_err(db("creating the schema"))?;
        tx.batch_execute(schema::SCHEMA)
            .await
            .map_err(db("creating the schema"))?;
        let old: i64 = tx
            .query_one(schema::HAS_OLD_COUNTERS, &[])
            .await
            .map_err(db("creating the schema"))?
            .get(0);
        if old > 0 {
            tx.batch_execute(schema::MOVE_OLD_COUNTERS)
                .await
                .map_err(db("moving analytics counters"))?;
        }
        tx.commit().await.map_err(db("creating the schema"))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unusable {
            database: self.name.to_string(),
            problem: "no connection".into(),
            context: e.to_string(),
            fix: "check that PostgreSQL runs and accepts this node; flowhost tries again".into(),
        })
    }

    /// Saved flows, `clause` filtering (by `$1`, a change stamp) and ordering them.
    async fn saved_flows(&self, clause: &str, changed: u64) -> Result<Vec<SavedFlow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT id, version, definition, changed FROM flows {clause}"),
                &[&(changed as i64)],
            )
            .await
            .map_err(db("listing flows"))?;
        Ok(rows
            .iter()
            .map(|r| SavedFlow {
                id: r.get(0),
                version: r.get::<_, i64>(1) as u32,
                definition: r.get(2),
                changed: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }
}

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}

#[async_trait]
impl FlowStore for PostgresStore {
    async fn save_flow(&self, id: &str, version: u32, definition: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("saving a flow"))?;
        let version = i64::from(version);
        // Saves of flows take turns (they are rare; reads and participants' writes do not
        // wait), so each stamp is larger than every one committed before it and a node
        // reading the changes since its last stamp misses none.
        tx.batch_execute("LOCK TABLE flows IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db("saving a flow"))?;
        tx.execute(
            "INSERT INTO flows (id, definition, version, changed)
             VALUES ($1, $2, $3, (SELECT COALESCE(MAX(changed), 0) + 1 FROM flows))
             ON CONFLICT (id) DO UPDATE SET definition = $2, version = $3,
                 changed = (SELECT COALESCE(MAX(changed), 0) + 1 FROM flows)",
            &[&id, &definition, &version],
        )
        .await
        .map_err(db("saving a flow"))?;
        tx.execute(
            "INSERT INTO flow_versions (flow_id, version, definition) VALUES ($1, $2, $3)
             ON CONFLICT (flow_id, version) DO UPDATE SET definition = $3",
            &[&id, &version, &definition],
        )
        .await
        .map_err(db("saving a flow"))?;
        listen::notify(&tx, &self.node).await?;
        tx.commit().await.map_err(db("saving a flow"))
    }

    async fn flows(&self) -> Result<Vec<SavedFlow>, StoreError> {
        self.saved_flows("WHERE changed >= $1 ORDER BY id", 0).await
    }

    async fn flows_changed_since(&self, changed: u64) -> Result<Vec<SavedFlow>, StoreError> {
        self.saved_flows("WHERE changed > $1 ORDER BY changed", changed)
            .await
    }

    async fn flow_version(&self, id: &str, version: u32) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT definition FROM flow_versions WHERE flow_id = $1 AND version = $2",
                &[&id, &i64::from(version)],
            )
            .await
            .map_err(db("reading a flow version"))?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[async_trait]
impl QueueStore for PostgresStore {
    async fn take_slot(
        &self,
        queue: &str,
        holder: &str,
        now: Millis,
        interval_ms: Millis,
    ) -> Result<Millis, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(db("taking a send slot"))?;
        let held = tx
            .query_opt(
                "SELECT slot FROM rate_holds WHERE queue = $1 AND holder = $2",
                &[&queue, &holder],
            )
            .await
            .map_err(db("taking a send slot"))?;
        if let Some(row) = held {
            return Ok(row.get(0));
        }
        // One statement takes the slot atomically across nodes (the row is locked).
        let slot: Millis = tx
            .query_one(
                "INSERT INTO rate_queues (queue, next_free) VALUES ($1, $2::BIGINT + $3::BIGINT)
                 ON CONFLICT (queue) DO UPDATE
                     SET next_free = GREATEST(rate_queues.next_free, $2::BIGINT) + $3::BIGINT
                 RETURNING next_free - $3::BIGINT",
                &[&queue, &now, &interval_ms],
            )
            .await
            .map_err(db("taking a send slot"))?
            .get(0);
        tx.execute(
            "INSERT INTO rate_holds (queue, holder, slot) VALUES ($1, $2, $3)
             ON CONFLICT (queue, holder) DO NOTHING",
            &[&queue, &holder, &slot],
        )
        .await
        .map_err(db("taking a send slot"))?;
        tx.execute(
            "DELETE FROM rate_holds WHERE queue = $1 AND slot < $2",
            &[&queue, &(now - 86_400_000)],
        )
        .await
        .map_err(db("taking a send slot"))?;
        tx.commit().await.map_err(db("taking a send slot"))?;
        Ok(slot)
    }
}
