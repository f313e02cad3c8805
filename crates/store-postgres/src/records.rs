//! Records (small JSON documents by kind, key and status) and People.

use super::*;
use deadpool_postgres::GenericClient;
use flowhost_store::{PeopleStore, Record, RecordStore};
use flowhost_types::person::Person;

/// Inserts or replaces a record, on its own or in a step's transaction.
pub(crate) async fn put(client: &impl GenericClient, r: &Record) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO records (kind, id, key, status, body) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, id) DO UPDATE SET key = $3, status = $4, body = $5",
            &[&r.kind, &r.id, &r.key, &r.status, &r.body.to_string()],
        )
        .await
        .map_err(db("saving a record"))?;
    Ok(())
}

fn record(
    kind: &str,
    id: String,
    key: String,
    status: String,
    body: &str,
) -> Result<Record, StoreError> {
    Ok(Record {
        body: serde_json::from_str(body)
            .map_err(|e| StoreError::corrupt(format!("{kind} {id:?}"), e))?,
        kind: kind.to_owned(),
        id,
        key,
        status,
    })
}

#[async_trait]
impl RecordStore for PostgresStore {
    async fn put_record(&self, r: &Record) -> Result<(), StoreError> {
        let client = self.client().await?;
        put(&client, r).await
    }

    async fn hold(
        &self,
        kind: &str,
        id: &str,
        owner: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "INSERT INTO holds (kind, id, owner, until) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, id) DO UPDATE SET owner = $3, until = $4
                     WHERE holds.owner = $3 OR holds.until <= $5",
                &[&kind, &id, &owner, &until, &now],
            )
            .await
            .map_err(db("holding work"))?;
        Ok(changed == 1)
    }

    async fn let_go(&self, kind: &str, id: &str, owner: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM holds WHERE kind = $1 AND id = $2 AND owner = $3",
                &[&kind, &id, &owner],
            )
            .await
            .map_err(db("letting go of work"))?;
        Ok(())
    }

    async fn prune_records(
        &self,
        kind: &str,
        statuses: &[&str],
        time_field: &str,
        before: Millis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
        let n = client
            .execute(
                "DELETE FROM records WHERE (kind, id) IN
                     (SELECT kind, id FROM records
                      WHERE kind = $1 AND status = ANY($2)
                        AND (body::jsonb ->> $3)::BIGINT < $4
                      LIMIT $5)",
                &[&kind, &statuses, &time_field, &before, &(limit as i64)],
            )
            .await
            .map_err(db("pruning records"))?;
        Ok(n as usize)
    }

    async fn record(&self, kind: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT key, status, body FROM records WHERE kind = $1 AND id = $2",
                &[&kind, &id],
            )
            .await
            .map_err(db("reading a record"))?;
        row.map(|r| record(kind, id.to_owned(), r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    async fn records(
        &self,
        kind: &str,
        key: Option<&str>,
        status: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<Record>, StoreError> {
        let client = self.client().await?;
        let limit = last.map(|n| n as i64);
        let rows = client
            .query(
                "SELECT id, key, status, body FROM records
                 WHERE kind = $1 AND ($2::TEXT IS NULL OR key = $2)
                   AND ($3::TEXT IS NULL OR status = $3)
                 ORDER BY seq DESC LIMIT $4",
                &[&kind, &key, &status, &limit],
            )
            .await
            .map_err(db("listing records"))?;
        let mut out = rows
            .iter()
            .map(|r| record(kind, r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

#[async_trait]
impl PeopleStore for PostgresStore {
    async fn save_person(&self, person: &Person) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db("saving a person"))?;
        let keys = person.contact_keys();
        for key in &keys {
            let owner = tx
                .query_opt(
                    "SELECT person_id FROM person_contacts WHERE contact = $1 FOR UPDATE",
                    &[key],
                )
                .await
                .map_err(db("saving a person"))?
                .map(|r| r.get::<_, String>(0));
            if let Some(owner) = owner.filter(|o| *o != person.id) {
                return Err(StoreError::Conflict(format!(
                    "contact {key} already belongs to person {owner:?}; update that person instead"
                )));
            }
        }
        tx.execute(
            "DELETE FROM person_contacts WHERE person_id = $1",
            &[&person.id],
        )
        .await
        .map_err(db("saving a person"))?;
        for key in &keys {
            tx.execute(
                "INSERT INTO person_contacts (contact, person_id) VALUES ($1, $2)",
                &[key, &person.id],
            )
            .await
            .map_err(db("saving a person"))?;
        }
        tx.execute(
            "INSERT INTO people (id, profile) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET profile = $2",
            &[&person.id, &json("person", person)?],
        )
        .await
        .map_err(db("saving a person"))?;
        tx.commit().await.map_err(db("saving a person"))
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        let client = self.client().await?;
        read_person(&client, id).await
    }

    async fn person_by_contact(&self, key: &str) -> Result<Option<Person>, StoreError> {
        let client = self.client().await?;
        let id = client
            .query_opt(
                "SELECT person_id FROM person_contacts WHERE contact = $1",
                &[&key],
            )
            .await
            .map_err(db("finding a person by contact"))?
            .map(|r| r.get::<_, String>(0));
        match id {
            Some(id) => read_person(&client, &id).await,
            None => Ok(None),
        }
    }
}

async fn read_person(client: &impl GenericClient, id: &str) -> Result<Option<Person>, StoreError> {
    let row = client
        .query_opt("SELECT profile FROM people WHERE id = $1", &[&id])
        .await
        .map_err(db("reading a person"))?;
    row.map(|r| {
        serde_json::from_str(r.get::<_, &str>(0))
            .map_err(|e| StoreError::corrupt(format!("person {id:?}"), e))
    })
    .transpose()
}
