//! Placeholders in element configuration: one syntax for every element that builds text from
//! flow data.
//!
//! | Placeholder              | Value                                                      |
//! |--------------------------|------------------------------------------------------------|
//! | `{{order_id}}`           | flow variable `order_id`                                   |
//! | `{{order.items.0.sku}}`  | a field (or array index) inside a JSON flow variable       |
//! | `{{person.id}}`          | the person's id; also `email`, `phone`, `externalId`       |
//! | `{{person.firstName}}`   | any other name is a person attribute                       |
//! | `{{secret.crm_token}}`   | an operator secret (Call API; never written to journeys)   |
//!
//! Spaces inside the braces are ignored. A placeholder whose value is missing or null is an
//! error when the element runs, never an empty string. Strings are inserted as they are;
//! numbers, booleans and JSON as JSON text. In a JSON body, a string that is exactly one
//! placeholder (`"{{points}}"`) takes the variable's JSON value, so numbers stay numbers.
//!
//! ```
//! use flowhost_flow::template::{Scope, Template};
//! let t = Template::parse("Hello {{person.firstName}}, order {{order_id}}").unwrap();
//! let person = flowhost_types::person::Person {
//!     attributes: serde_json::json!({"firstName": "Ada"}).as_object().unwrap().clone(),
//!     ..Default::default()
//! };
//! let vars = [("order_id".to_owned(), serde_json::json!(1001))].into();
//! let scope = Scope::new(&vars, &person);
//! assert_eq!(t.render(&scope).unwrap(), "Hello Ada, order 1001");
//! ```

use flowhost_types::person::Person;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What a placeholder refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// A flow variable, optionally a path inside its JSON value.
    Variable {
        /// Variable name.
        name: String,
        /// Field names or array indexes inside the value.
        path: Vec<String>,
    },
    /// A person field or attribute.
    Person(String),
    /// An operator secret.
    Secret(String),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Variable { name, path } if path.is_empty() => write!(f, "variable {name:?}"),
            Ref::Variable { name, path } => write!(f, "{name}.{}", path.join(".")),
            Ref::Person(field) => write!(f, "person.{field}"),
            Ref::Secret(name) => write!(f, "secret.{name}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Ref(Ref),
}

/// A string with placeholders, parsed once when the flow is deployed.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A placeholder that could not be filled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The value is not set, or is null.
    #[error("{0} is not set; set it earlier in the flow or remove the placeholder")]
    Missing(String),
    /// A secret the operator has not configured.
    #[error("secret {0:?} is not configured; the operator adds it under [call_api.secrets]")]
    UnknownSecret(String),
}

/// Where placeholders take their values from.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    variables: &'a BTreeMap<String, Value>,
    person: &'a Person,
    secrets: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Scope<'a> {
    /// Variables and person; no secrets.
    pub fn new(variables: &'a BTreeMap<String, Value>, person: &'a Person) -> Self {
        Scope {
            variables,
            person,
            secrets: None,
        }
    }

    /// The same scope with operator secrets available.
    pub fn with_secrets(self, secrets: &'a BTreeMap<String, String>) -> Self {
        Scope {
            secrets: Some(secrets),
            ..self
        }
    }

    /// The value a reference stands for.
    pub fn lookup(&self, r: &Ref) -> Result<Value, TemplateError> {
        let missing = || TemplateError::Missing(r.to_string());
        let found = match r {
            Ref::Variable { name, path } => {
                let mut value = self.variables.get(name).ok_or_else(missing)?;
                for key in path {
                    value = match value {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    }
                    .ok_or_else(missing)?;
                }
                value.clone()
            }
            Ref::Person(field) => {
                let p = self.person;
                match field.as_str() {
                    "id" if !p.id.is_empty() => Value::String(p.id.clone()),
                    "email" => p
                        .emails
                        .first()
                        .cloned()
                        .map(Value::String)
                        .ok_or_else(missing)?,
                    "phone" => p
                        .phones
                        .first()
                        .cloned()
                        .map(Value::String)
                        .ok_or_else(missing)?,
                    "externalId" => p
                        .external_id
                        .clone()
                        .map(Value::String)
                        .ok_or_else(missing)?,
                    other => p.attributes.get(other).cloned().ok_or_else(missing)?,
                }
            }
            Ref::Secret(name) => {
                return self
                    .secrets
                    .and_then(|s| s.get(name))
                    .map(|v| Value::String(v.clone()))
                    .ok_or_else(|| TemplateError::UnknownSecret(name.clone()));
            }
        };
        if found.is_null() {
            return Err(TemplateError::Missing(format!("{r} (it is null)")));
        }
        Ok(found)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Template {
    /// Parses text with `{{…}}` placeholders; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                format!(
                    "placeholder at character {} is not closed; write {{{{name}}}}",
                    text.len() - rest.len() + open
                )
            })?;
            let inner = after[..close].trim();
            parts.push(Part::Ref(parse_ref(inner)?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Every reference in the template.
    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    /// Whether the template has no placeholders.
    pub fn is_literal(&self) -> bool {
        self.refs().next().is_none()
    }

    /// The text with every placeholder filled.
    pub fn render(&self, scope: &Scope<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(r) => match scope.lookup(r)? {
                    Value::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// The value: a template that is exactly one placeholder keeps the JSON type of its value;
    /// anything else renders to a string.
    pub fn render_value(&self, scope: &Scope<'_>) -> Result<Value, TemplateError> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => scope.lookup(r),
            _ => self.render(scope).map(Value::String),
        }
    }
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let hint = "write {{variable}}, {{variable.field}}, {{person.attribute}} or {{secret.name}}";
    let segments: Vec<&str> = inner.split('.').map(str::trim).collect();
    if segments.iter().any(|s| !is_name(s)) {
        return Err(format!("{{{{{inner}}}}} is not a placeholder; {hint}"));
    }
    Ok(match segments.as_slice() {
        ["person", field] => Ref::Person((*field).to_owned()),
        ["secret", name] => Ref::Secret((*name).to_owned()),
        ["person" | "secret", ..] => {
            return Err(format!("{{{{{inner}}}}} has too many parts; {hint}"));
        }
        [name, path @ ..] => Ref::Variable {
            name: (*name).to_owned(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
        },
        [] => unreachable!("split yields at least one segment"),
    })
}

/// A JSON value whose strings may hold placeholders.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTemplate {
    /// A string template.
    Text(Template),
    /// Any other scalar, sent as it is.
    Literal(Value),
    /// An array.
    Array(Vec<JsonTemplate>),
    /// An object; keys are literal.
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses every string in `value`; errors name the JSON path below `path`.
    pub fn parse(value: &Value, path: &str) -> Result<JsonTemplate, (String, String)> {
        Ok(match value {
            Value::String(s) => {
                JsonTemplate::Text(Template::parse(s).map_err(|e| (path.to_owned(), e))?)
            }
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| JsonTemplate::parse(v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| {
                        JsonTemplate::parse(v, &format!("{path}.{k}")).map(|t| (k.clone(), t))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    /// Every reference inside.
    pub fn refs(&self) -> Vec<&Ref> {
        match self {
            JsonTemplate::Text(t) => t.refs().collect(),
            JsonTemplate::Literal(_) => Vec::new(),
            JsonTemplate::Array(items) => items.iter().flat_map(|i| i.refs()).collect(),
            JsonTemplate::Object(fields) => fields.iter().flat_map(|(_, v)| v.refs()).collect(),
        }
    }

    /// The value with every placeholder filled.
    pub fn render(&self, scope: &Scope<'_>) -> Result<Value, TemplateError> {
        Ok(match self {
            JsonTemplate::Text(t) => t.render_value(scope)?,
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(scope))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => {
                let mut map = Map::new();
                for (k, v) in fields {
                    map.insert(k.clone(), v.render(scope)?);
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> Person {
        Person {
            id: "p1".into(),
            emails: vec!["ada@example.com".into()],
            attributes: json!({"firstName": "Ada", "tier": "gold"})
                .as_object()
                .unwrap()
                .clone(),
            ..Person::default()
        }
    }

    #[test]
    fn renders_variables_paths_person_and_secrets() {
        let vars = BTreeMap::from([
            ("n".to_owned(), json!(3)),
            ("order".to_owned(), json!({"items": [{"sku": "A-1"}]})),
        ]);
        let secrets = BTreeMap::from([("tok".to_owned(), "s3cr3t".to_owned())]);
        let p = person();
        let scope = Scope::new(&vars, &p).with_secrets(&secrets);
        let t = Template::parse(
            "{{ n }}/{{order.items.0.sku}}/{{person.email}}/{{person.tier}}/{{secret.tok}}/{{person.id}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&scope).unwrap(),
            "3/A-1/ada@example.com/gold/s3cr3t/p1"
        );
        assert_eq!(
            Template::parse("{{order}}")
                .unwrap()
                .render(&scope)
                .unwrap(),
            r#"{"items":[{"sku":"A-1"}]}"#
        );
    }

    #[test]
    fn missing_values_are_errors_not_empty_strings() {
        let vars = BTreeMap::from([("gone".to_owned(), Value::Null)]);
        let p = person();
        let scope = Scope::new(&vars, &p);
        let err = |t: &str| {
            Template::parse(t)
                .unwrap()
                .render(&scope)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("a{{x}}"),
            "variable \"x\" is not set; set it earlier in the flow or remove the placeholder"
        );
        assert!(err("{{gone}}").contains("(it is null)"));
        assert!(err("{{person.phone}}").starts_with("person.phone is not set"));
        assert!(err("{{secret.k}}").contains("[call_api.secrets]"));
    }

    #[test]
    fn parse_errors_say_what_to_write() {
        assert!(Template::parse("a {{b").unwrap_err().contains("not closed"));
        assert!(
            Template::parse("{{}}")
                .unwrap_err()
                .contains("not a placeholder")
        );
        assert!(
            Template::parse("{{a b}}")
                .unwrap_err()
                .contains("not a placeholder")
        );
        assert!(
            Template::parse("{{secret.a.b}}")
                .unwrap_err()
                .contains("too many parts")
        );
        assert!(Template::parse("plain } text {").unwrap().is_literal());
    }

    #[test]
    fn json_bodies_keep_types_for_whole_placeholders() {
        let vars = BTreeMap::from([
            ("points".to_owned(), json!(42)),
            ("ok".to_owned(), json!(true)),
        ]);
        let p = person();
        let scope = Scope::new(&vars, &p);
        let t = JsonTemplate::parse(
            &json!({"points": "{{points}}", "label": "has {{points}}", "flags": ["{{ok}}", 1, null]}),
            "body",
        )
        .unwrap();
        assert_eq!(
            t.render(&scope).unwrap(),
            json!({"points": 42, "label": "has 42", "flags": [true, 1, null]})
        );
        let (path, _) = JsonTemplate::parse(&json!({"a": ["{{"]}), "config.body").unwrap_err();
        assert_eq!(path, "config.body.a[0]");
    }
}
