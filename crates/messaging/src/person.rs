//! People who take part in flows: profiles with contact information and typed attributes,
//! found by id or by any contact. The values ([`Person`], [`Contact`], …) live in
//! `flowhost-types`; [`People`] keeps them in the engine's store.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use flowhost_messaging::person::{Contact, People, Person};
//! use flowhost_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::in_memory().unwrap();
//! let people = People::new(&store);
//! let ada = people
//!     .create(Person { phones: vec!["+385 91 123 4567".into()], ..Default::default() })
//!     .await
//!     .unwrap();
//! let found = people.find(&Contact::phone("385911234567").unwrap()).await.unwrap().unwrap();
//! assert_eq!(found.id, ada.id);
//! # }
//! ```

pub use flowhost_types::person::*;

use flowhost_store::{Record, StateStore, StoreError};
use serde_json::{Map, Value};

const ATTRIBUTE_KIND: &str = "attribute-type";

/// Why a profile could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeopleError {
    /// A contact, attribute name or attribute value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No such person.
    #[error("no person {0:?}")]
    NotFound(String),
    /// The database failed, or a contact belongs to someone else.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// People profiles over the engine's store.
pub struct People<'a> {
    store: &'a dyn StateStore,
}

impl<'a> People<'a> {
    /// Profiles kept in `store`.
    pub fn new(store: &'a dyn StateStore) -> Self {
        People { store }
    }

    /// Declares a custom attribute, so profiles may have it.
    pub async fn define_attribute(&self, name: &str, ty: AttributeType) -> Result<(), PeopleError> {
        if STANDARD_ATTRIBUTES.iter().any(|(n, _)| *n == name) {
            return Err(PeopleError::Invalid(format!(
                "{name:?} is a standard attribute; custom attributes need another name"
            )));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PeopleError::Invalid(format!(
                "attribute name {name:?} may only hold letters, digits and _"
            )));
        }
        self.store
            .put_record(&Record {
                kind: ATTRIBUTE_KIND.into(),
                id: name.to_owned(),
                key: String::new(),
                status: String::new(),
                body: serde_json::json!({"type": ty}),
            })
            .await?;
        Ok(())
    }

    /// The type of an attribute, standard or custom; `None` when it is not defined.
    pub async fn attribute_type(&self, name: &str) -> Result<Option<AttributeType>, PeopleError> {
        if let Some((_, ty)) = STANDARD_ATTRIBUTES.iter().find(|(n, _)| *n == name) {
            return Ok(Some(*ty));
        }
        match self.store.record(ATTRIBUTE_KIND, name).await? {
            Some(r) => Ok(Some(
                serde_json::from_value(r.body["type"].clone()).map_err(|e| {
                    StoreError::Corrupt {
                        what: format!("attribute type {name:?}"),
                        reason: e.to_string(),
                    }
                })?,
            )),
            None => Ok(None),
        }
    }

    /// Checks attribute values against their types.
    pub async fn check_attributes(
        &self,
        attributes: &Map<String, Value>,
    ) -> Result<(), PeopleError> {
        for (name, value) in attributes {
            let Some(ty) = self.attribute_type(name).await? else {
                return Err(PeopleError::Invalid(format!(
                    "attribute {name:?} is not defined; define it first (flowhost people define {name} text)"
                )));
            };
            if !ty.accepts(value) {
                return Err(PeopleError::Invalid(format!(
                    "attribute {name:?} is {}, not {value}",
                    ty.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Creates a profile; an empty id gets a fresh one. Contacts must parse, attributes must
    /// be defined and of their type, and no contact may belong to another person.
    pub async fn create(&self, mut person: Person) -> Result<Person, PeopleError> {
        if person.id.is_empty() {
            person.id = format!("person-{}", uuid::Uuid::new_v4().simple());
        } else if self.store.person(&person.id).await?.is_some() {
            return Err(PeopleError::Invalid(format!(
                "person {:?} exists already; update it instead",
                person.id
            )));
        }
        self.save(person).await
    }

    /// Replaces a profile after the same checks as [`People::create`].
    pub async fn save(&self, person: Person) -> Result<Person, PeopleError> {
        for phone in &person.phones {
            Contact::phone(phone).map_err(PeopleError::Invalid)?;
        }
        for email in &person.emails {
            Contact::email(email).map_err(PeopleError::Invalid)?;
        }
        self.check_attributes(&person.attributes).await?;
        self.store.save_person(&person).await?;
        Ok(person)
    }

    /// A profile by id.
    pub async fn get(&self, id: &str) -> Result<Option<Person>, PeopleError> {
        Ok(self.store.person(id).await?)
    }

    /// The profile with this contact.
    pub async fn find(&self, contact: &Contact) -> Result<Option<Person>, PeopleError> {
        Ok(self.store.person_by_contact(&contact.key()).await?)
    }

    /// The profile with `contact`, or a new one with just that contact. Says whether it was
    /// created.
    pub async fn find_or_create(&self, contact: &Contact) -> Result<(Person, bool), PeopleError> {
        match self.find(contact).await? {
            Some(person) => Ok((person, false)),
            None => {
                let mut person = Person::default();
                person.add_contact(contact);
                Ok((self.create(person).await?, true))
            }
        }
    }

    /// Sets attributes on a profile (a null value removes one).
    pub async fn update_attributes(
        &self,
        id: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Person, PeopleError> {
        let mut person = self
            .get(id)
            .await?
            .ok_or_else(|| PeopleError::NotFound(id.to_owned()))?;
        merge(&mut person.attributes, attributes);
        self.save(person).await
    }

    /// The profile with `contact`, its attributes updated; created with the contact and the
    /// attributes when there is none. Says whether it was created.
    pub async fn upsert_by_contact(
        &self,
        contact: &Contact,
        attributes: &Map<String, Value>,
    ) -> Result<(Person, bool), PeopleError> {
        match self.find(contact).await? {
            Some(mut person) => {
                merge(&mut person.attributes, attributes);
                Ok((self.save(person).await?, false))
            }
            None => {
                let mut person = Person::default();
                person.add_contact(contact);
                merge(&mut person.attributes, attributes);
                Ok((self.create(person).await?, true))
            }
        }
    }
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        if v.is_null() {
            into.remove(k);
        } else {
            into.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowhost_store_sqlite::SqliteStore;

    #[tokio::test]
    async fn attributes_are_typed() {
        let store = SqliteStore::in_memory().unwrap();
        let people = People::new(&store);
        let with = |attrs: Value| Person {
            attributes: attrs.as_object().unwrap().clone(),
            ..Default::default()
        };
        let err = people
            .create(with(serde_json::json!({"tier": "gold"})))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"tier\" is not defined"), "{err}");
        people
            .define_attribute("tier", AttributeType::Text)
            .await
            .unwrap();
        people
            .define_attribute("points", AttributeType::Number)
            .await
            .unwrap();
        people
            .create(with(
                serde_json::json!({"tier": "gold", "points": 3, "birthDate": "1990-02-28"}),
            ))
            .await
            .unwrap();
        let err = people
            .create(with(serde_json::json!({"points": "many"})))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "attribute \"points\" is number, not \"many\"");
        let bad_date = with(serde_json::json!({"birthDate": "1990-02-30"}));
        assert!(people.create(bad_date).await.is_err());
        let standard = people.define_attribute("firstName", AttributeType::Text);
        assert!(standard.await.is_err());
    }

    #[tokio::test]
    async fn contacts_are_unique_and_found() {
        let store = SqliteStore::in_memory().unwrap();
        let people = People::new(&store);
        let ada = people
            .create(Person {
                phones: vec!["+385911234567".into()],
                emails: vec!["ada@example.com".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let by_email = people
            .find(&Contact::email("ADA@example.com").unwrap())
            .await;
        assert_eq!(by_email.unwrap().unwrap().id, ada.id);
        let err = people
            .create(Person {
                phones: vec!["00385911234567".into()],
                ..Default::default()
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already belongs to person"), "{err}");
        let (same, created) = people
            .upsert_by_contact(
                &Contact::phone("385911234567").unwrap(),
                serde_json::json!({"firstName": "Ada"}).as_object().unwrap(),
            )
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(same.id, ada.id);
        assert_eq!(same.attributes["firstName"], "Ada");
        let (new, created) = people
            .upsert_by_contact(&Contact::email("bob@example.com").unwrap(), &Map::new())
            .await
            .unwrap();
        assert!(created);
        assert_eq!(new.emails, ["bob@example.com"]);
    }
}
