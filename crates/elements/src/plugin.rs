//! `plugin:<id>[@<version>]`: a custom element run in the plugin sandbox.

use super::{BoxFuture, Element, ElementType, StepInput, StepOutcome, StepResult, TypeSource};
use flowhost_flow::{ElementDef, Issue};
use flowhost_plugin_host::{Invocation, LoadedPlugin, PluginHost, PluginSet};
use flowhost_types::log::{LogLevel, LogLine};
use serde_json::Value;
use std::sync::Arc;

/// `plugin:<id>[@<version>]` types, from the snapshot of the plugins in use when a flow
/// compiles.
pub(crate) struct PluginTypes {
    plugins: Option<(PluginHost, PluginSet)>,
}

impl PluginTypes {
    /// No plugins folder in use: every `plugin:` type is refused, saying so.
    pub(crate) fn none() -> Self {
        PluginTypes { plugins: None }
    }

    /// The plugins of `plugins`, run by `host`.
    pub(crate) fn new(host: PluginHost, plugins: PluginSet) -> Self {
        PluginTypes {
            plugins: Some((host, plugins)),
        }
    }
}

impl TypeSource for PluginTypes {
    fn resolve(&self, spec: &str) -> Result<(String, Arc<dyn ElementType>), String> {
        let kind = format!("plugin:{spec}");
        let (id, version) = match spec.split_once('@') {
            Some((id, v)) => {
                let v = semver::Version::parse(v).map_err(|e| {
                    format!(
                        "version {v:?} in {kind:?} is not semver ({e}); write plugin:{id}@1.2.3"
                    )
                })?;
                (id, Some(v))
            }
            None => (spec, None),
        };
        let Some((host, plugins)) = &self.plugins else {
            return Err(format!(
                "plugin {id:?} is not loaded (no plugins folder is in use)"
            ));
        };
        let registry = plugins.snapshot();
        let Some(plugin) = registry.get(id, version.as_ref()) else {
            let versions = registry.versions(id);
            return Err(if versions.is_empty() {
                format!(
                    "plugin {id:?} is not loaded; put its .wasm file in the plugins folder (`flowhost plugins list` shows what is loaded)"
                )
            } else {
                format!(
                    "plugin {id:?} has no version {}; loaded versions: {}",
                    version.map(|v| v.to_string()).unwrap_or_default(),
                    versions.join(", ")
                )
            });
        };
        Ok((
            format!("plugin:{}", plugin.key()),
            Arc::new(PluginElementType::new(host.clone(), plugin.clone())),
        ))
    }
}

/// The element type of one loaded plugin.
pub struct PluginElementType {
    host: PluginHost,
    plugin: Arc<LoadedPlugin>,
}

impl PluginElementType {
    /// The type for `plugin`, run by `host`.
    pub fn new(host: PluginHost, plugin: Arc<LoadedPlugin>) -> Self {
        PluginElementType { host, plugin }
    }
}

struct PluginElement {
    host: PluginHost,
    plugin: Arc<LoadedPlugin>,
    config: Vec<(String, Value)>,
}

impl ElementType for PluginElementType {
    fn known_exits(&self) -> Option<Vec<String>> {
        Some(
            self.plugin
                .manifest
                .exits
                .iter()
                .map(|e| e.id.clone())
                .collect(),
        )
    }

    fn build(&self, def: &ElementDef) -> Result<Box<dyn Element>, Vec<Issue>> {
        let m = &self.plugin.manifest;
        let who = format!("plugin {}", self.plugin.key());
        let mut issues = Vec::new();
        let mut config = Vec::new();
        for field in &m.config {
            let path = format!("config.{}", field.name);
            match def.config.get(&field.name) {
                Some(_) if field.secret => issues.push(Issue::new(
                    path,
                    format!(
                        "is a secret of {who}; remove it from the flow and set it in flowhost.toml under [plugins.{}.secrets]",
                        m.id
                    ),
                )),
                Some(value) if !field.kind.accepts(value) => issues.push(Issue::new(
                    path,
                    format!("{who} expects {}, got {}", field.kind.name(), json_kind(value)),
                )),
                Some(value) => config.push((field.name.clone(), value.clone())),
                None if field.secret => {}
                None => match &field.default {
                    Some(default) => config.push((field.name.clone(), default.clone())),
                    None if field.required => issues.push(Issue::new(
                        path,
                        format!("is required by {who} ({})", field.kind.name()),
                    )),
                    None => {}
                },
            }
        }
        for key in def.config.keys() {
            if !m.config.iter().any(|f| f.name == *key) {
                let known: Vec<&str> = m
                    .config
                    .iter()
                    .filter(|f| !f.secret)
                    .map(|f| f.name.as_str())
                    .collect();
                issues.push(Issue::new(
                    format!("config.{key}"),
                    format!(
                        "{who} has no config field {key:?}; its fields: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        for secret in &self.plugin.missing_secrets {
            let message = match self.plugin.secret_env.get(secret) {
                Some(env) => format!(
                    "{who} needs secret {secret:?}, read from the environment variable {env}, which is not set; export it where flowhost runs"
                ),
                None => format!(
                    "{who} needs secret {secret:?}, which the operator has not set; add it in flowhost.toml under [plugins.{}.secrets]",
                    m.id
                ),
            };
            issues.push(Issue::new("type", message));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Box::new(PluginElement {
            host: self.host.clone(),
            plugin: self.plugin.clone(),
            config,
        }))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Element for PluginElement {
    fn exits(&self) -> Vec<String> {
        self.plugin
            .manifest
            .exits
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }

    fn run<'a>(&'a self, input: StepInput<'a>) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let invocation = Invocation {
                flow_id: input.flow_id.to_owned(),
                element_id: input.element_id.to_owned(),
                participant_id: input.participant_id.to_owned(),
                person: input.person.clone(),
                config: self.config.clone(),
                idempotency_key: Some(input.idempotency_base()),
            };
            let run = self
                .host
                .execute(&self.plugin, &invocation, input.variables.clone())
                .await;
            let mut logs = run.logs;
            let (outcome, data) = match run.result {
                Ok((exit, data)) => (StepOutcome::Exit(exit), data),
                Err(failure) => {
                    let reason = failure.to_string();
                    logs.push(LogLine {
                        level: LogLevel::Error,
                        message: reason.clone(),
                    });
                    // The technical part (a wasm backtrace) after the reason, not in it.
                    if let Some(detail) = run.detail {
                        logs.push(LogLine {
                            level: LogLevel::Debug,
                            message: detail,
                        });
                    }
                    (StepOutcome::Failed(reason), None)
                }
            };
            let set = run
                .changed
                .iter()
                .filter_map(|k| run.variables.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            StepResult {
                set,
                logs,
                data,
                requests: run.requests,
                ..StepResult::new(outcome)
            }
        })
    }
}
