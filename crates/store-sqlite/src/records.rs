//! Records: small JSON documents by kind, with a lookup key and a status.

use super::*;

/// Inserts or replaces a record, on its own or in a step's transaction.
pub(crate) fn put(conn: &Connection, r: &Record) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO records (kind, id, key, status, body) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, id) DO UPDATE SET key = ?3, status = ?4, body = ?5",
    )
    .and_then(|mut stmt| stmt.execute(params![r.kind, r.id, r.key, r.status, r.body.to_string()]))
    .map_err(db("saving a record"))?;
    Ok(())
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn put_record(&self, r: &Record) -> Result<(), StoreError> {
        let r = r.clone();
        self.write(move |conn| put(conn, &r)).await
    }

    async fn hold(
        &self,
        kind: &str,
        id: &str,
        owner: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        let (kind, id, owner) = (kind.to_owned(), id.to_owned(), owner.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO holds (kind, id, owner, until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, id) DO UPDATE SET owner = ?3, until = ?4
                     WHERE holds.owner = ?3 OR holds.until <= ?5",
            )
            .and_then(|mut stmt| stmt.execute(params![kind, id, owner, until, now]))
            .map(|changed| changed == 1)
            .map_err(db("holding work"))
        })
        .await
    }

    async fn let_go(&self, kind: &str, id: &str, owner: &str) -> Result<(), StoreError> {
        let (kind, id, owner) = (kind.to_owned(), id.to_owned(), owner.to_owned());
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM holds WHERE kind = ?1 AND id = ?2 AND owner = ?3")
                .and_then(|mut stmt| stmt.execute(params![kind, id, owner]))
                .map(drop)
                .map_err(db("letting go of work"))
        })
        .await
    }

    async fn prune_records(
        &self,
        kind: &str,
        statuses: &[&str],
        time_field: &str,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let kind = kind.to_owned();
        let statuses = serde_json::to_string(statuses).expect("strings serialize");
        let path = format!("$.{time_field}");
        self.call(move |conn| {
            conn.prepare_cached(
                "DELETE FROM records WHERE rowid IN
                     (SELECT rowid FROM records
                      WHERE kind = ?1 AND status IN (SELECT value FROM json_each(?2))
                        AND json_extract(body, ?3) < ?4
                      LIMIT ?5)",
            )
            .and_then(|mut stmt| stmt.execute(params![kind, statuses, path, before, limit as i64]))
            .map_err(db("pruning records"))
        })
        .await
    }

    async fn record(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.call(move |conn| {
            let row: Option<(String, String, String)> = conn
                .prepare_cached("SELECT key, status, body FROM records WHERE kind = ?1 AND id = ?2")
                .and_then(|mut stmt| {
                    stmt.query_row(params![kind, id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(db("reading a record"))?;
            row.map(|(key, status, body)| {
                Ok(Record {
                    body: serde_json::from_str(&body)
                        .map_err(|e| StoreError::corrupt(format!("{kind} {id:?}"), e))?,
                    kind: kind.clone(),
                    id: id.clone(),
                    key,
                    status,
                })
            })
            .transpose()
        })
        .await
    }

    async fn records(
        &self,
        kind: &str,
        key: Option<&str>,
        status: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError> {
        let (kind, key, status) = (
            kind.to_owned(),
            key.map(str::to_owned),
            status.map(str::to_owned),
        );
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, key, status, body FROM records
                     WHERE kind = ?1 AND (?2 IS NULL OR key = ?2) AND (?3 IS NULL OR status = ?3)
                     ORDER BY rowid DESC LIMIT ?4",
                )
                .map_err(db("listing records"))?;
            let limit = last.map_or(-1, |n| n as i64);
            let rows = stmt
                .query_map(params![kind, key, status, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(db("listing records"))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, key, status, body) = row.map_err(db("listing records"))?;
                out.push(Record {
                    kind: kind.clone(),
                    body: serde_json::from_str(&body)
                        .map_err(|e| StoreError::corrupt(format!("{kind} {id:?}"), e))?,
                    id,
                    key,
                    status,
                });
            }
            out.reverse();
            Ok(out)
        })
        .await
    }
}
