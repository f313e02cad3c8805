//! The element's self-description and the exit it picks.

use crate::bindings::flowhost::element::types as wit;
use crate::{ERROR_EXIT, Json};

/// What a configuration field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A string.
    Text,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Any JSON value.
    Json,
}

/// A configuration field of the element.
#[derive(Clone, Debug)]
pub struct Field {
    name: String,
    label: String,
    description: String,
    kind: FieldKind,
    required: bool,
    default_value: Option<Json>,
    secret: bool,
}

impl Field {
    /// A field of the given kind, optional and without a default.
    pub fn new(name: &str, kind: FieldKind) -> Self {
        Field {
            name: name.to_owned(),
            label: name.to_owned(),
            description: String::new(),
            kind,
            required: false,
            default_value: None,
            secret: false,
        }
    }

    /// A text field.
    pub fn text(name: &str) -> Self {
        Self::new(name, FieldKind::Text)
    }

    /// A number field.
    pub fn number(name: &str) -> Self {
        Self::new(name, FieldKind::Number)
    }

    /// A boolean field.
    pub fn boolean(name: &str) -> Self {
        Self::new(name, FieldKind::Boolean)
    }

    /// A field holding any JSON value.
    pub fn json(name: &str) -> Self {
        Self::new(name, FieldKind::Json)
    }

    /// A secret the operator sets once for the plugin; flows never contain it. Read it with
    /// [`crate::config::secret`].
    pub fn secret(name: &str) -> Self {
        Field {
            secret: true,
            ..Self::new(name, FieldKind::Text)
        }
    }

    /// The label shown to flow authors.
    pub fn label(mut self, label: &str) -> Self {
        self.label = label.to_owned();
        self
    }

    /// A longer description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// Flows must set this field.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The value used when a flow leaves the field out.
    pub fn default_value(mut self, value: impl Into<Json>) -> Self {
        self.default_value = Some(value.into());
        self
    }
}

/// The element's self-description, returned once when the host loads the plugin.
#[derive(Clone, Debug)]
pub struct Manifest {
    id: String,
    version: String,
    name: String,
    description: String,
    config: Vec<Field>,
    exits: Vec<(String, String)>,
    hosts: Vec<String>,
}

impl Manifest {
    /// A manifest with the plugin id (lowercase letters, digits, `-`), semver version and
    /// display name. The `error` exit is added for you.
    pub fn new(id: &str, version: &str, name: &str) -> Self {
        Manifest {
            id: id.to_owned(),
            version: version.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            config: Vec::new(),
            exits: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// A description shown to flow authors.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// Adds a configuration field.
    pub fn config(mut self, field: Field) -> Self {
        self.config.push(field);
        self
    }

    /// Adds an exit.
    pub fn exit(mut self, id: &str, label: &str) -> Self {
        self.exits.push((id.to_owned(), label.to_owned()));
        self
    }

    /// Declares an outbound host: `api.example.com`, `api.example.com:8443`,
    /// `*.example.com`, or `setting:<name>` for the host of the URL in an operator setting.
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.to_owned());
        self
    }

    pub(crate) fn into_wit(mut self) -> wit::Manifest {
        if !self.exits.iter().any(|(id, _)| id == ERROR_EXIT) {
            self.exits.push((ERROR_EXIT.to_owned(), "Error".to_owned()));
        }
        wit::Manifest {
            id: self.id,
            version: self.version,
            name: self.name,
            description: self.description,
            config: self
                .config
                .into_iter()
                .map(|f| wit::ConfigField {
                    name: f.name,
                    label: f.label,
                    description: f.description,
                    kind: match f.kind {
                        FieldKind::Text => wit::FieldKind::Text,
                        FieldKind::Number => wit::FieldKind::Number,
                        FieldKind::Boolean => wit::FieldKind::Boolean,
                        FieldKind::Json => wit::FieldKind::Json,
                    },
                    required: f.required,
                    default_value: f.default_value.map(|v| v.to_string()),
                    secret: f.secret,
                })
                .collect(),
            exits: self
                .exits
                .into_iter()
                .map(|(id, label)| wit::ExitDecl { id, label })
                .collect(),
            hosts: self.hosts,
        }
    }
}

/// The exit an element takes, with optional data recorded in the journey.
#[derive(Clone, Debug)]
pub struct Exit {
    id: String,
    data: Option<Json>,
}

impl Exit {
    /// Takes the exit with this id; it must be one the manifest declares.
    pub fn to(id: &str) -> Self {
        Exit {
            id: id.to_owned(),
            data: None,
        }
    }

    /// Attaches outcome data (a JSON object) recorded in the journey.
    pub fn with_data(mut self, data: Json) -> Self {
        self.data = Some(data);
        self
    }

    pub(crate) fn into_wit(self) -> wit::Outcome {
        wit::Outcome {
            exit: self.id,
            data: self.data.map(|d| d.to_string()),
        }
    }
}
