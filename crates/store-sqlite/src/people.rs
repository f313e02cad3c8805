//! People profiles and the index of their contacts.

use super::*;

#[async_trait]
impl PeopleStore for SqliteStore {
    async fn save_person(&self, person: &Person) -> Result<(), StoreError> {
        let person = person.clone();
        self.write(move |conn| {
            let keys = person.contact_keys();
            for key in &keys {
                let owner: Option<String> = conn
                    .prepare_cached("SELECT person_id FROM person_contacts WHERE contact = ?1")
                    .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
                    .map_err(db("saving a person"))?;
                if let Some(owner) = owner.filter(|o| *o != person.id) {
                    return Err(StoreError::Conflict(format!(
                        "contact {key} already belongs to person {owner:?}; update that person instead"
                    )));
                }
            }
            conn.execute("DELETE FROM person_contacts WHERE person_id = ?1", [&person.id])
                .map_err(db("saving a person"))?;
            for key in &keys {
                conn.execute(
                    "INSERT INTO person_contacts (contact, person_id) VALUES (?1, ?2)",
                    params![key, person.id],
                )
                .map_err(db("saving a person"))?;
            }
            conn.execute(
                "INSERT INTO people (id, profile) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET profile = ?2",
                params![person.id, json("person", &person)?],
            )
            .map_err(db("saving a person"))?;
            Ok(())
        })
        .await
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| read_person(conn, &id)).await
    }

    async fn person_by_contact(&self, key: &str) -> Result<Option<Person>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let id: Option<String> = conn
                .prepare_cached("SELECT person_id FROM person_contacts WHERE contact = ?1")
                .and_then(|mut stmt| stmt.query_row([&key], |r| r.get(0)).optional())
                .map_err(db("finding a person by contact"))?;
            match id {
                Some(id) => read_person(conn, &id),
                None => Ok(None),
            }
        })
        .await
    }
}

pub(crate) fn read_person(conn: &Connection, id: &str) -> Result<Option<Person>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT profile FROM people WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(db("reading a person"))?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::corrupt(format!("person {id:?}"), e))
    })
    .transpose()
}
