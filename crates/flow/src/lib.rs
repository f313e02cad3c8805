//! Flow definitions: the JSON a flow author writes, and the checks that run before a flow can
//! run, the `{{placeholder}}` syntax shared by element configurations ([`template`]), and
//! RFC 9535 JSONPath ([`jsonpath`]). The JSON Schema is `docs/flow.schema.json`.
//!
//! This crate knows flows as data: which element types exist and what their configuration
//! means is the elements' business, checked when the engine compiles a flow.
//!
//! ```json
//! {
//!   "id": "order-updates",
//!   "name": "Order updates",
//!   "status": "active",
//!   "entry_points": [{ "type": "api", "start": "lookup" }],
//!   "elements": [
//!     { "id": "lookup", "type": "plugin:order-status", "config": {},
//!       "exits": { "shipped": "done", "error": "done" } },
//!     { "id": "done", "type": "exit" }
//!   ]
//! }
//! ```

#![deny(missing_docs)]

pub mod jsonpath;
pub mod template;

use flowhost_types::clock::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// Most elements one flow may have.
pub const MAX_ELEMENTS: usize = 100;

/// A flow definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDef {
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Lifecycle status.
    #[serde(default)]
    pub status: FlowStatus,
    /// Where participants enter.
    pub entry_points: Vec<EntryPoint>,
    /// The steps.
    pub elements: Vec<ElementDef>,
}

/// A flow's lifecycle status.
///
/// `draft` → `active` → `finished`; `active` ⇄ `paused`; `paused` → `finished`; and `draft`,
/// `active` or `paused` → `canceled`. Only an active flow takes new participants; a paused
/// one holds its participants where they are (their waits, messages and timeouts are kept
/// and act when it is resumed); a finished one lets its participants finish; canceling stops
/// them (a chatbot session one of them is in carries on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    /// Being edited; participants cannot enter.
    Draft,
    /// Running.
    #[default]
    Active,
    /// Closed to new participants, and those inside do not advance until it is active
    /// again.
    Paused,
    /// Closed to new participants; those inside carry on.
    Finished,
    /// Stopped: no new participants, and those inside stop.
    Canceled,
}

impl FlowStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [FlowStatus; 5] = [
        FlowStatus::Draft,
        FlowStatus::Active,
        FlowStatus::Paused,
        FlowStatus::Finished,
        FlowStatus::Canceled,
    ];

    /// Its name in flow definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Draft => "draft",
            FlowStatus::Active => "active",
            FlowStatus::Paused => "paused",
            FlowStatus::Finished => "finished",
            FlowStatus::Canceled => "canceled",
        }
    }

    /// Whether participants may still be inside and run (anything but a draft or a
    /// canceled flow): its element types must stay available.
    pub fn has_participants_to_run(self) -> bool {
        !matches!(self, FlowStatus::Draft | FlowStatus::Canceled)
    }

    /// Whether a flow may go from this status to `to`.
    pub fn can_become(self, to: FlowStatus) -> bool {
        use FlowStatus::*;
        matches!(
            (self, to),
            (Draft, Active)
                | (Active | Paused, Finished)
                | (Active, Paused)
                | (Paused, Active)
                | (Draft | Active | Paused, Canceled)
        ) || self == to
    }
}

/// How participants enter a flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPoint {
    /// Kind of entry.
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Element id where participants start.
    pub start: String,
    /// Inbound message entry: the channel messages arrive on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<flowhost_types::message::Channel>,
    /// Inbound message entry: the sender (number, email, name) messages are sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Inbound message entry: only messages whose first word is this keyword (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
}

impl EntryPoint {
    /// An entry point of `kind` at `start`, with no inbound settings.
    pub fn new(kind: EntryKind, start: &str) -> Self {
        EntryPoint {
            kind,
            start: start.to_owned(),
            channel: None,
            sender: None,
            keyword: None,
        }
    }
}

/// Kinds of entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// Started through the library API or `flowhost run`.
    Api,
    /// Entered from another flow's Add to Flow element.
    ExistingFlow,
    /// Started by an inbound message on a channel and sender that no participant waits for.
    InboundMessage,
}

impl EntryKind {
    /// Its name in flow definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Api => "api",
            EntryKind::ExistingFlow => "existing-flow",
            EntryKind::InboundMessage => "inbound-message",
        }
    }
}

/// One element of a flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElementDef {
    /// Unique id within the flow.
    pub id: String,
    /// Built-in name (`flowhost::elements::BUILTINS`) or `plugin:<id>[@<version>]`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Configuration, checked against what the element type declares.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Exit id → id of the next element. An exit left out ends the flow there.
    #[serde(default)]
    pub exits: BTreeMap<String, String>,
}

/// One problem found in a flow, at a JSON path (`elements[3].exits.failed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// JSON path into the flow definition.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Issue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A flow that cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The file could not be read.
    #[error("{source_name}: cannot read: {error}")]
    Read {
        /// File name.
        source_name: String,
        /// Cause.
        error: std::io::Error,
    },
    /// Not valid JSON, or not the shape of a flow.
    #[error("{source_name}: {path}: {message} (line {line}, column {column})")]
    Parse {
        /// File name.
        source_name: String,
        /// JSON path where parsing stopped.
        path: String,
        /// Parser message.
        message: String,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// Parsed, but with problems; one line per issue.
    #[error("{}", .issues.iter().map(|i| format!("{source_name}: {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// File name or flow id.
        source_name: String,
        /// Every problem found.
        issues: Vec<Issue>,
    },
}

impl FlowDef {
    /// Reads a flow file.
    pub fn load(path: &Path) -> Result<FlowDef, FlowError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| FlowError::Read {
            source_name: name.clone(),
            error,
        })?;
        Self::parse(&text, &name)
    }

    /// Parses flow JSON; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<FlowDef, FlowError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            FlowError::Parse {
                source_name: source_name.to_owned(),
                path: if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                message: inner
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                line: inner.line(),
                column: inner.column(),
            }
        })
    }

    /// Structural checks that need no knowledge of element types: ids, entry points, exit
    /// targets, reachability, size.
    pub fn check_structure(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.id.trim().is_empty() {
            issues.push(Issue::new("id", "is empty; give the flow an id"));
        }
        if self.elements.len() > MAX_ELEMENTS {
            issues.push(Issue::new(
                "elements",
                format!(
                    "{} elements, more than the limit of {MAX_ELEMENTS}; split the flow into modular flows joined with Add to Flow",
                    self.elements.len()
                ),
            ));
        }
        let mut index = BTreeMap::new();
        for (i, el) in self.elements.iter().enumerate() {
            if el.id.trim().is_empty() {
                issues.push(Issue::new(format!("elements[{i}].id"), "is empty"));
            } else if let Some(first) = index.insert(el.id.as_str(), i) {
                issues.push(Issue::new(
                    format!("elements[{i}].id"),
                    format!(
                        "{:?} is already the id of elements[{first}]; ids must be unique",
                        el.id
                    ),
                ));
            }
        }
        if self.entry_points.is_empty() {
            issues.push(Issue::new(
                "entry_points",
                "is empty; add one, e.g. {\"type\": \"api\", \"start\": \"<element id>\"}",
            ));
        }
        for (i, ep) in self.entry_points.iter().enumerate() {
            if !index.contains_key(ep.start.as_str()) {
                issues.push(Issue::new(
                    format!("entry_points[{i}].start"),
                    format!("no element {:?}", ep.start),
                ));
            }
            let inbound = ep.kind == EntryKind::InboundMessage;
            if inbound && (ep.channel.is_none() || ep.sender.as_deref().is_none_or(str::is_empty)) {
                issues.push(Issue::new(
                    format!("entry_points[{i}]"),
                    "an inbound-message entry point needs \"channel\" and \"sender\", e.g. {\"type\": \"inbound-message\", \"channel\": \"sms\", \"sender\": \"447491163443\", \"start\": \"...\"}",
                ));
            }
            if !inbound && (ep.channel.is_some() || ep.sender.is_some() || ep.keyword.is_some()) {
                issues.push(Issue::new(
                    format!("entry_points[{i}]"),
                    format!(
                        "channel, sender and keyword belong to inbound-message entry points, not {}",
                        ep.kind.as_str()
                    ),
                ));
            }
            if let Some(j) = self.entry_points[..i]
                .iter()
                .position(|other| other.kind == ep.kind && ep.kind != EntryKind::InboundMessage)
            {
                issues.push(Issue::new(
                    format!("entry_points[{i}].type"),
                    format!(
                        "entry_points[{j}] is already a {} entry point; a flow has at most one",
                        ep.kind.as_str()
                    ),
                ));
            }
        }
        for (i, el) in self.elements.iter().enumerate() {
            for (exit, target) in &el.exits {
                if !index.contains_key(target.as_str()) {
                    issues.push(Issue::new(
                        format!("elements[{i}].exits.{exit}"),
                        format!("no element {target:?}"),
                    ));
                } else if *target == el.id {
                    issues.push(Issue::new(
                        format!("elements[{i}].exits.{exit}"),
                        "leads back to the same element; put a wait between to retry",
                    ));
                }
            }
        }
        // Reachability from every entry point.
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&str> = self
            .entry_points
            .iter()
            .map(|e| e.start.as_str())
            .filter(|s| index.contains_key(s))
            .collect();
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(&i) = index.get(id) {
                for target in self.elements[i].exits.values() {
                    if index.contains_key(target.as_str()) {
                        queue.push_back(target);
                    }
                }
            }
        }
        for (i, el) in self.elements.iter().enumerate() {
            if !el.id.is_empty() && !seen.contains(el.id.as_str()) && !self.entry_points.is_empty()
            {
                issues.push(Issue::new(
                    format!("elements[{i}]"),
                    format!(
                        "element {:?} is unreachable from every entry point; connect it or remove it",
                        el.id
                    ),
                ));
            }
        }
        issues
    }
}

/// Parses a duration in a flow or chatbot definition, `90s`, `15m`, `2h`, `1d`, into
/// milliseconds.
pub fn parse_duration(text: &str) -> Option<Millis> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: Millis = n.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(elements: Value) -> FlowDef {
        FlowDef::parse(
            &serde_json::json!({
                "id": "f", "name": "F",
                "entry_points": [{"type": "api", "start": "a"}],
                "elements": elements,
            })
            .to_string(),
            "f.json",
        )
        .unwrap()
    }

    #[test]
    fn parse_errors_name_the_json_path() {
        let err = FlowDef::parse(
            r#"{"id":"f","name":"F","entry_points":[],"elements":[{"id":"a","type":"exit","exit":{}}]}"#,
            "f.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("f.json: elements[0].exit: unknown field `exit`"),
            "{err}"
        );
        let err = FlowDef::parse("{\"id\": 3}", "f.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f.json: id: invalid type: integer `3`"),
            "{err}"
        );
    }

    #[test]
    fn structure_checks() {
        let f = flow(serde_json::json!([
            {"id": "a", "type": "branch", "exits": {"yes": "b", "no": "x", "loop": "a"}},
            {"id": "b", "type": "exit"},
            {"id": "b", "type": "exit"},
            {"id": "c", "type": "exit"},
        ]));
        let issues: Vec<String> = f.check_structure().iter().map(|i| i.to_string()).collect();
        assert_eq!(
            issues,
            [
                "elements[2].id: \"b\" is already the id of elements[1]; ids must be unique",
                "elements[0].exits.loop: leads back to the same element; put a wait between to retry",
                "elements[0].exits.no: no element \"x\"",
                "elements[3]: element \"c\" is unreachable from every entry point; connect it or remove it",
            ]
        );
    }

    #[test]
    fn published_schema_matches_the_code() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../docs/flow.schema.json")).unwrap();
        // The built-in type names are checked where the built-ins are (the elements).
        assert_eq!(schema["properties"]["elements"]["maxItems"], MAX_ELEMENTS);
        let statuses: Vec<FlowStatus> =
            serde_json::from_value(schema["properties"]["status"]["enum"].clone()).unwrap();
        assert_eq!(statuses, FlowStatus::ALL);
        let kinds: Vec<EntryKind> = serde_json::from_value(
            schema["$defs"]["entry_point"]["properties"]["type"]["enum"].clone(),
        )
        .unwrap();
        assert_eq!(
            kinds,
            [
                EntryKind::Api,
                EntryKind::ExistingFlow,
                EntryKind::InboundMessage
            ]
        );
        let example: FlowDef = FlowDef::parse(
            include_str!("../../../examples/order-updates.json"),
            "examples/order-updates.json",
        )
        .unwrap();
        assert!(example.check_structure().is_empty());
    }

    #[test]
    fn too_many_elements() {
        let mut els: Vec<Value> = (0..101)
            .map(|i| serde_json::json!({"id": format!("e{i}"), "type": "set-variable", "exits": {"next": format!("e{}", i + 1)}}))
            .collect();
        els[0]["id"] = "a".into();
        els[100] = serde_json::json!({"id": "e100", "type": "exit"});
        let issues = flow(Value::Array(els)).check_structure();
        assert!(
            issues
                .iter()
                .any(|i| i.path == "elements" && i.message.contains("Add to Flow"))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
    }
}
