//! People who take part in flows: profiles with contact information and typed attributes.
//! Storing and finding them is the messaging crate's `People`.
//!
//! ```
//! use flowhost_types::person::Contact;
//!
//! let a = Contact::phone("+385 91 123-4567").unwrap();
//! assert_eq!(a, Contact::phone("00385911234567").unwrap());
//! assert_eq!(a.key(), "phone:385911234567");
//! ```

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

    /// Adds a contact it does not have yet.
    pub fn add_contact(&mut self, contact: &Contact) {
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
    /// Whether `value` is of this type (null always is: it removes the attribute).
    pub fn accepts(self, value: &Value) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
