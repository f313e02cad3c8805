//! People who take part in flows: profiles with contact information and typed attributes,
//! found by id or by any contact.
//!
//! ```
//! use flowhost::person::{Contact, People, Person};
//! use flowhost::store::SqliteStore;
//!
//! let store = SqliteStore::in_memory().unwrap();
//! let people = People::new(&store);
//! let ada = people
//!     .create(Person { phones: vec!["+385 91 123 4567".into()], ..Default::default() })
//!     .unwrap();
//! let found = people.find(&Contact::phone("385911234567").unwrap()).unwrap().unwrap();
//! assert_eq!(found.id, ada.id);
//! ```

use crate::store::{Record, StateStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A person: contact information plus standard and custom attributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Person {
    /// Identifier, unique in this flowhost.
    pub id: String,
    /// Phone numbers.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Identifier in an external system.
    pub external_id: Option<String>,
    /// Attributes such as `firstName`, `lastName`, `country`, and custom ones.
    pub attributes: Map<String, Value>,
}

impl Person {
    /// The normalised keys of all its contacts ([`Contact::key`]); contacts that do not
    /// parse are left out.
    pub fn contact_keys(&self) -> Vec<String> {
        let phones = self.phones.iter().filter_map(|p| Contact::phone(p).ok());
        let emails = self.emails.iter().filter_map(|e| Contact::email(e).ok());
        let external = self.external_id.iter().map(|x| Contact {
            kind: ContactKind::ExternalId,
            value: x.clone(),
        });
        phones
            .chain(emails)
            .chain(external)
            .map(|c| c.key())
            .collect()
    }

    /// Whether it has this contact.
    pub fn has_contact(&self, contact: &Contact) -> bool {
        self.contact_keys().contains(&contact.key())
    }

    fn add_contact(&mut self, contact: &Contact) {
        if self.has_contact(contact) {
            return;
        }
        match contact.kind {
            ContactKind::Phone => self.phones.push(contact.to_string()),
            ContactKind::Email => self.emails.push(contact.value.clone()),
            ContactKind::ExternalId => self.external_id = Some(contact.value.clone()),
        }
    }
}

/// Kinds of contact information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContactKind {
    /// A phone number (SMS, WhatsApp, Viber, RCS).
    Phone,
    /// An email address.
    Email,
    /// An identifier in an external system.
    ExternalId,
}

impl ContactKind {
    /// What it is called in messages: "phone number", "email address", "external id".
    pub fn describe(self) -> &'static str {
        match self {
            ContactKind::Phone => "phone number",
            ContactKind::Email => "email address",
            ContactKind::ExternalId => "external id",
        }
    }
}

/// One contact, normalised: phone numbers as digits only (international form, no `+`),
/// emails in lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Kind.
    pub kind: ContactKind,
    /// Normalised value.
    pub value: String,
}

impl Contact {
    /// A phone number: `+385 91 123-4567`, `00385911234567` and `385911234567` are the same.
    pub fn phone(text: &str) -> Result<Contact, String> {
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix('+')
            .or_else(|| trimmed.strip_prefix("00"))
            .unwrap_or(trimmed);
        let mut digits = String::new();
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => {
                    return Err(format!(
                        "{text:?} is not a phone number; write it in international form, e.g. +385911234567"
                    ));
                }
            }
        }
        if !(6..=15).contains(&digits.len()) {
            return Err(format!(
                "{text:?} is not a phone number (6 to 15 digits); write it in international form, e.g. +385911234567"
            ));
        }
        Ok(Contact {
            kind: ContactKind::Phone,
            value: digits,
        })
    }

    /// An email address.
    pub fn email(text: &str) -> Result<Contact, String> {
        let value = text.trim().to_lowercase();
        let ok = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !value.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if ok {
            Ok(Contact {
                kind: ContactKind::Email,
                value,
            })
        } else {
            Err(format!("{text:?} is not an email address"))
        }
    }

    /// A contact of `kind`.
    pub fn parse(kind: ContactKind, text: &str) -> Result<Contact, String> {
        match kind {
            ContactKind::Phone => Self::phone(text),
            ContactKind::Email => Self::email(text),
            ContactKind::ExternalId if !text.trim().is_empty() => Ok(Contact {
                kind,
                value: text.trim().to_owned(),
            }),
            ContactKind::ExternalId => Err("the external id is empty".into()),
        }
    }

    /// A contact whose kind is guessed: an email when it has `@`, else a phone number.
    pub fn guess(text: &str) -> Result<Contact, String> {
        if text.contains('@') {
            Self::email(text)
        } else {
            Self::phone(text)
        }
    }

    /// The key it is indexed by: `phone:385911234567`, `email:ada@example.com`.
    pub fn key(&self) -> String {
        let kind = match self.kind {
            ContactKind::Phone => "phone",
            ContactKind::Email => "email",
            ContactKind::ExternalId => "external",
        };
        format!("{kind}:{}", self.value)
    }
}

impl std::fmt::Display for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ContactKind::Phone => write!(f, "+{}", self.value),
            _ => f.write_str(&self.value),
        }
    }
}

/// Types of person attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeType {
    /// Text.
    Text,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A list of texts.
    List,
}

impl AttributeType {
    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (AttributeType::Text, Value::String(_)) => true,
            (AttributeType::Number, Value::Number(_)) => true,
            (AttributeType::Boolean, Value::Bool(_)) => true,
            (AttributeType::Date, Value::String(s)) => s.parse::<jiff::civil::Date>().is_ok(),
            (AttributeType::List, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::Text => "text",
            AttributeType::Number => "number",
            AttributeType::Boolean => "boolean",
            AttributeType::Date => "date",
            AttributeType::List => "list",
        }
    }
}

/// Standard attributes every profile may have, with their types.
pub const STANDARD_ATTRIBUTES: &[(&str, AttributeType)] = &[
    ("firstName", AttributeType::Text),
    ("lastName", AttributeType::Text),
    ("middleName", AttributeType::Text),
    ("gender", AttributeType::Text),
    ("birthDate", AttributeType::Date),
    ("country", AttributeType::Text),
    ("city", AttributeType::Text),
    ("address", AttributeType::Text),
    ("preferredLanguage", AttributeType::Text),
    ("profilePicture", AttributeType::Text),
];

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
    pub fn define_attribute(&self, name: &str, ty: AttributeType) -> Result<(), PeopleError> {
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
        self.store.put_record(&Record {
            kind: ATTRIBUTE_KIND.into(),
            id: name.to_owned(),
            key: String::new(),
            status: String::new(),
            body: serde_json::json!({"type": ty}),
        })?;
        Ok(())
    }

    /// The type of an attribute, standard or custom; `None` when it is not defined.
    pub fn attribute_type(&self, name: &str) -> Result<Option<AttributeType>, PeopleError> {
        if let Some((_, ty)) = STANDARD_ATTRIBUTES.iter().find(|(n, _)| *n == name) {
            return Ok(Some(*ty));
        }
        match self.store.record(ATTRIBUTE_KIND, name)? {
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
    pub fn check_attributes(&self, attributes: &Map<String, Value>) -> Result<(), PeopleError> {
        for (name, value) in attributes {
            let Some(ty) = self.attribute_type(name)? else {
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
    pub fn create(&self, mut person: Person) -> Result<Person, PeopleError> {
        if person.id.is_empty() {
            person.id = format!("person-{}", uuid::Uuid::new_v4().simple());
        } else if self.store.person(&person.id)?.is_some() {
            return Err(PeopleError::Invalid(format!(
                "person {:?} exists already; update it instead",
                person.id
            )));
        }
        self.save(person)
    }

    /// Replaces a profile after the same checks as [`People::create`].
    pub fn save(&self, person: Person) -> Result<Person, PeopleError> {
        for phone in &person.phones {
            Contact::phone(phone).map_err(PeopleError::Invalid)?;
        }
        for email in &person.emails {
            Contact::email(email).map_err(PeopleError::Invalid)?;
        }
        self.check_attributes(&person.attributes)?;
        self.store.save_person(&person)?;
        Ok(person)
    }

    /// A profile by id.
    pub fn get(&self, id: &str) -> Result<Option<Person>, PeopleError> {
        Ok(self.store.person(id)?)
    }

    /// The profile with this contact.
    pub fn find(&self, contact: &Contact) -> Result<Option<Person>, PeopleError> {
        Ok(self.store.person_by_contact(&contact.key())?)
    }

    /// The profile with `contact`, or a new one with just that contact. Says whether it was
    /// created.
    pub fn find_or_create(&self, contact: &Contact) -> Result<(Person, bool), PeopleError> {
        match self.find(contact)? {
            Some(person) => Ok((person, false)),
            None => {
                let mut person = Person::default();
                person.add_contact(contact);
                Ok((self.create(person)?, true))
            }
        }
    }

    /// Sets attributes on a profile (a null value removes one).
    pub fn update_attributes(
        &self,
        id: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Person, PeopleError> {
        let mut person = self
            .get(id)?
            .ok_or_else(|| PeopleError::NotFound(id.to_owned()))?;
        merge(&mut person.attributes, attributes);
        self.save(person)
    }

    /// The profile with `contact`, its attributes updated; created with the contact and the
    /// attributes when there is none. Says whether it was created.
    pub fn upsert_by_contact(
        &self,
        contact: &Contact,
        attributes: &Map<String, Value>,
    ) -> Result<(Person, bool), PeopleError> {
        match self.find(contact)? {
            Some(mut person) => {
                merge(&mut person.attributes, attributes);
                Ok((self.save(person)?, false))
            }
            None => {
                let mut person = Person::default();
                person.add_contact(contact);
                merge(&mut person.attributes, attributes);
                Ok((self.create(person)?, true))
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
    use crate::store::SqliteStore;

    #[test]
    fn contacts_normalise() {
        let a = Contact::phone("+385 91 123-4567").unwrap();
        assert_eq!(a, Contact::phone("00385911234567").unwrap());
        assert_eq!(a.key(), "phone:385911234567");
        assert!(Contact::phone("12345").is_err());
        assert!(Contact::phone("call me").is_err());
        assert_eq!(
            Contact::email(" Ada@Example.COM ").unwrap().key(),
            "email:ada@example.com"
        );
        for bad in ["ada", "ada@", "@example.com", "ada@example", "a da@x.io"] {
            assert!(Contact::email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_are_typed() {
        let store = SqliteStore::in_memory().unwrap();
        let people = People::new(&store);
        let with = |attrs: Value| Person {
            attributes: attrs.as_object().unwrap().clone(),
            ..Default::default()
        };
        let err = people
            .create(with(serde_json::json!({"tier": "gold"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"tier\" is not defined"), "{err}");
        people
            .define_attribute("tier", AttributeType::Text)
            .unwrap();
        people
            .define_attribute("points", AttributeType::Number)
            .unwrap();
        people
            .create(with(
                serde_json::json!({"tier": "gold", "points": 3, "birthDate": "1990-02-28"}),
            ))
            .unwrap();
        let err = people
            .create(with(serde_json::json!({"points": "many"})))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "attribute \"points\" is number, not \"many\"");
        assert!(
            people
                .create(with(serde_json::json!({"birthDate": "1990-02-30"})))
                .is_err()
        );
        assert!(
            people
                .define_attribute("firstName", AttributeType::Text)
                .is_err()
        );
    }

    #[test]
    fn contacts_are_unique_and_found() {
        let store = SqliteStore::in_memory().unwrap();
        let people = People::new(&store);
        let ada = people
            .create(Person {
                phones: vec!["+385911234567".into()],
                emails: vec!["ada@example.com".into()],
                ..Default::default()
            })
            .unwrap();
        let by_email = people
            .find(&Contact::email("ADA@example.com").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(by_email.id, ada.id);
        let err = people
            .create(Person {
                phones: vec!["00385911234567".into()],
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("already belongs to person"), "{err}");
        let (same, created) = people
            .upsert_by_contact(
                &Contact::phone("385911234567").unwrap(),
                serde_json::json!({"firstName": "Ada"}).as_object().unwrap(),
            )
            .unwrap();
        assert!(!created);
        assert_eq!(same.id, ada.id);
        assert_eq!(same.attributes["firstName"], "Ada");
        let (new, created) = people
            .upsert_by_contact(&Contact::email("bob@example.com").unwrap(), &Map::new())
            .unwrap();
        assert!(created);
        assert_eq!(new.emails, ["bob@example.com"]);
    }
}
