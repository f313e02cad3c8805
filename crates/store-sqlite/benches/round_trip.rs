//! What a call to the SQLite store costs against the same statement run inline on a
//! connection, in one run: the price of keeping SQLite off the async workers.
//!
//! Run with `./dev bench` (or `cargo bench -p flowhost-store-sqlite`). Figures and the
//! machine go in docs/BENCHMARKS.md.
//!
//! - `store-round-trip/raw-read` and `raw-commit`: rusqlite on the calling thread, a
//!   prepared `SELECT` of the flows table, and a one-row upsert in its own transaction
//!   (WAL, `synchronous = NORMAL`, as the store opens its file).
//! - `store-round-trip/store-read` and `store-commit`: the same through `SqliteStore`
//!   (`flows()`, `save_flow()`): the closure sent to the database thread, the answer back.
//! - `store-round-trip/store-commit-64-tasks`: 64 tasks saving at once; time per save.

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost_store::FlowStore;
use flowhost_store_sqlite::SqliteStore;
use rusqlite::{Connection, params};
use std::time::{Duration, Instant};

fn round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("store-round-trip");

    let conn = Connection::open(dir.path().join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch("CREATE TABLE flows (id TEXT PRIMARY KEY, definition TEXT NOT NULL)")
        .unwrap();
    group.bench_function("raw-read", |b| {
        b.iter(|| {
            let mut stmt = conn
                .prepare_cached("SELECT id, definition FROM flows ORDER BY id")
                .unwrap();
            let rows: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows
        })
    });
    let mut n = 0u64;
    group.bench_function("raw-commit", |b| {
        b.iter(|| {
            n += 1;
            conn.prepare_cached(
                "INSERT INTO flows (id, definition) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET definition = ?2",
            )
            .unwrap()
            .execute(params!["f", format!("{{\"v\":{n}}}")])
            .unwrap()
        })
    });

    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    group.bench_function("store-read", |b| {
        b.to_async(&rt)
            .iter(|| async { store.flows().await.unwrap() })
    });
    group.bench_function("store-commit", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let definition = format!("{{\"v\":{n}}}");
            let store = &store;
            async move { store.save_flow("f", 1, &definition).await.unwrap() }
        })
    });
    group.bench_function("store-commit-64-tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let per_task = iters.div_ceil(64);
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for task in 0..64 {
                    let store = store.clone();
                    tasks.spawn(async move {
                        for i in 0..per_task {
                            store
                                .save_flow(&format!("f{task}"), 1, &format!("{{\"v\":{i}}}"))
                                .await
                                .unwrap();
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = round_trip
}
criterion_main!(benches);
