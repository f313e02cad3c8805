//! `add-to-flow`: enters a participant into another flow at its Existing Flow entry point.
//!
//! ```json
//! {"flow": "loyalty", "variables": {"order": "{{order_id}}", "source": "shop"},
//!  "participant": {"contact": "{{friend_email}}", "type": "email",
//!                  "attributes": {"firstName": "{{friend_name}}"}}}
//! ```
//!
//! - `variables` maps the target flow's variable names to values (placeholders allowed).
//! - Without `participant`, the same person enters the target flow. With it, the person
//!   with that contact does: their mapped `attributes` are updated in People, or a profile
//!   is created with the contact and the attributes.
//! - Exits: `success`; `failover` ("in all other cases") when the target flow is not
//!   deployed or not active, has no `existing-flow` entry point, or the contact is missing
//!   or invalid. Placed last before an exit, the participant in effect moves to the target
//!   flow; placed elsewhere, they continue here too and are in both flows.

use super::{BoxFuture, Element, ElementType, StepInput, StepResult, parse_config};
use flowhost_flow::template::{JsonTemplate, Ref, Scope, Template};
use flowhost_flow::{ElementDef, Issue};
use flowhost_messaging::person::{Contact, ContactKind, People};
use flowhost_store::{ParticipantState, StateStore, Status};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct AddToFlowType {
    /// The people other participants are found in or added to.
    people: Arc<dyn StateStore>,
}

impl AddToFlowType {
    pub(crate) fn new(people: Arc<dyn StateStore>) -> Self {
        AddToFlowType { people }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    flow: String,
    #[serde(default)]
    variables: Map<String, Value>,
    #[serde(default)]
    participant: Option<ParticipantConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantConfig {
    contact: String,
    #[serde(rename = "type")]
    kind: ContactKind,
    #[serde(default)]
    attributes: Map<String, Value>,
}

struct Another {
    contact: Template,
    kind: ContactKind,
    attributes: Vec<(String, JsonTemplate)>,
}

struct AddToFlow {
    people: Arc<dyn StateStore>,
    flow: String,
    /// Whether `failover` leads anywhere.
    failover_connected: bool,
    variables: Vec<(String, JsonTemplate)>,
    another: Option<Another>,
}

fn templates(
    map: &Map<String, Value>,
    path: &str,
    issues: &mut Vec<Issue>,
) -> Vec<(String, JsonTemplate)> {
    let mut out = Vec::new();
    for (name, value) in map {
        let at = format!("{path}.{name}");
        match JsonTemplate::parse(value, &at) {
            Ok(t) if t.refs().iter().any(|r| matches!(r, Ref::Secret(_))) => {
                issues.push(Issue::new(at, "secrets cannot be passed to another flow"))
            }
            Ok(t) => out.push((name.clone(), t)),
            Err((p, e)) => issues.push(Issue::new(p, e)),
        }
    }
    out
}

impl ElementType for AddToFlowType {
    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let config: Config = parse_config(def)?;
        let mut issues = Vec::new();
        if config.flow.trim().is_empty() {
            issues.push(Issue::new(
                "config.flow",
                "is empty; name the target flow's id",
            ));
        }
        let variables = templates(&config.variables, "config.variables", &mut issues);
        let another = config.participant.map(|p| {
            let contact = Template::parse(&p.contact).unwrap_or_else(|e| {
                issues.push(Issue::new("config.participant.contact", e));
                Template::parse("").expect("empty template")
            });
            if contact.is_literal() && p.contact.trim().is_empty() {
                issues.push(Issue::new(
                    "config.participant.contact",
                    "is empty; take it from a variable or attribute, e.g. \"{{friend_email}}\"",
                ));
            }
            Another {
                contact,
                kind: p.kind,
                attributes: templates(&p.attributes, "config.participant.attributes", &mut issues),
            }
        });
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(AddToFlow {
            people: self.people.clone(),
            flow: config.flow,
            failover_connected: def.exits.contains_key("failover"),
            variables,
            another,
        }))
    }
}

fn failover(reason: String) -> StepResult {
    let mut r = StepResult::exit("failover");
    r.data = Some(serde_json::json!({ "failover": reason.clone() }));
    r.logs.push(flowhost_types::log::LogLine {
        level: flowhost_plugin_host::capabilities::LogLevel::Warn,
        message: reason,
    });
    r
}

impl Element for AddToFlow {
    fn exits(&self) -> Vec<String> {
        vec!["success".into(), "failover".into()]
    }

    fn flows_entered(&self) -> Vec<String> {
        vec![self.flow.clone()]
    }

    fn warnings(&self) -> Vec<Issue> {
        if self.failover_connected {
            Vec::new()
        } else {
            vec![Issue::new(
                "exits",
                "no \"failover\" exit: when nobody can be added (the target is not active, a value is missing), the flow ends here without a trace of it; connect exits.failover",
            )]
        }
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let entry = match input.flows.existing_flow_start(&self.flow) {
                Ok(entry) => entry,
                Err(why) => return failover(format!("cannot add to flow: {why}")),
            };
            let scope = Scope::new(input.variables, input.person);
            let mut variables = BTreeMap::new();
            for (name, t) in &self.variables {
                match t.render(&scope) {
                    Ok(v) => {
                        variables.insert(name.clone(), v);
                    }
                    Err(e) => return failover(format!("cannot pass variable {name}: {e}")),
                }
            }
            let (person, created) = match &self.another {
                None => (input.person.clone(), false),
                Some(another) => {
                    let text = match another.contact.render(&scope) {
                        Ok(t) => t,
                        Err(e) => {
                            return failover(format!("no contact for the other participant: {e}"));
                        }
                    };
                    let contact = match Contact::parse(another.kind, &text) {
                        Ok(c) => c,
                        Err(e) => {
                            return failover(format!(
                                "invalid contact for the other participant: {e}"
                            ));
                        }
                    };
                    let mut attributes = Map::new();
                    for (name, t) in &another.attributes {
                        match t.render(&scope) {
                            Ok(v) => {
                                attributes.insert(name.clone(), v);
                            }
                            Err(e) => return failover(format!("cannot set attribute {name}: {e}")),
                        }
                    }
                    match People::new(&*self.people)
                        .upsert_by_contact(&contact, &attributes)
                        .await
                    {
                        Ok(found) => found,
                        Err(e) => {
                            return failover(format!("cannot save the other participant: {e}"));
                        }
                    }
                }
            };
            let mut entrant =
                ParticipantState::new(&self.flow, entry.version, &entry.start, person, variables);
            entrant.status = Status::Queued;
            let mut result = StepResult::exit("success");
            let mut data = serde_json::json!({
                "flow": self.flow,
                "participant": entrant.id,
            });
            if self.another.is_some() {
                data["person"] = Value::String(entrant.person.id.clone());
                data["personCreated"] = Value::Bool(created);
            }
            result.data = Some(data);
            result.enter.push(entrant);
            result
        })
    }
}
