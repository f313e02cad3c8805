//! Bindings for WIT `flowhost:element@0.1.0` and their translation to the host's own types.
//!
//! Each released WIT version has one module like this. The capabilities and the engine only
//! see version-independent types, so a later `0.2.0` adds a module and an enum variant in
//! [`super::Bindings`] and leaves components built against `0.1.0` working unchanged.

use super::capabilities::LogLevel;
use super::manifest::{ConfigField, ExitDecl, FieldKind, Manifest};
use super::outcome::HostCallMisuse;
use super::state::ExecState;
use super::{ElementFailure, Invocation, Outcome};
use flowhost_outbound::OutboundError;
use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

/// The version string in the component's export name.
pub const VERSION: &str = "0.1.0";

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "plugin",
        imports: {
            "flowhost:element/http.send": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

use bindings::flowhost::element::{config, http, log, types, variables};

/// Adds the 0.1.0 imports to `linker`.
pub fn add_to_linker(linker: &mut Linker<ExecState>) -> wasmtime::Result<()> {
    bindings::Plugin::add_to_linker::<ExecState, HasSelf<ExecState>>(linker, |s| s)
}

/// A component built against 0.1.0, ready to instantiate.
#[derive(Clone)]
pub struct Pre(bindings::PluginPre<ExecState>);

impl Pre {
    pub fn new(pre: wasmtime::component::InstancePre<ExecState>) -> wasmtime::Result<Self> {
        Ok(Pre(bindings::PluginPre::new(pre)?))
    }

    /// Instantiates and calls `describe`.
    pub async fn describe(
        &self,
        store: &mut Store<ExecState>,
    ) -> wasmtime::Result<Result<Manifest, String>> {
        let plugin = self.0.instantiate_async(&mut *store).await?;
        let raw = plugin
            .flowhost_element_element()
            .call_describe(store)
            .await?;
        Ok(manifest_from_wit(raw))
    }

    /// Instantiates and calls `execute`.
    pub async fn execute(
        &self,
        store: &mut Store<ExecState>,
        invocation: &Invocation,
    ) -> wasmtime::Result<Result<Outcome, ElementFailure>> {
        let plugin = self.0.instantiate_async(&mut *store).await?;
        let inv = invocation_to_wit(invocation);
        let result = plugin
            .flowhost_element_element()
            .call_execute(store, &inv)
            .await?;
        Ok(match result {
            Ok(outcome) => Ok(Outcome {
                exit: outcome.exit,
                data: outcome.data,
            }),
            Err(types::ElementError::InvalidConfig(m)) => Err(ElementFailure::InvalidConfig(m)),
            Err(types::ElementError::Failed(m)) => Err(ElementFailure::Failed(m)),
        })
    }
}

fn manifest_from_wit(m: types::Manifest) -> Result<Manifest, String> {
    let quoted = |s: &str| {
        format!(
            "{:?}",
            crate::bounds::preview(s, crate::bounds::PREVIEW_BYTES)
        )
    };
    let version = semver::Version::parse(&m.version)
        .map_err(|e| format!("version {} is not semver ({e})", quoted(&m.version)))?;
    let config = m
        .config
        .into_iter()
        .map(|f| {
            let default = match f.default_value {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "config field {}: default {} is not JSON ({e})",
                        quoted(&f.name),
                        quoted(&text)
                    )
                })?),
                None => None,
            };
            Ok(ConfigField {
                name: f.name,
                label: f.label,
                description: f.description,
                kind: match f.kind {
                    types::FieldKind::Text => FieldKind::Text,
                    types::FieldKind::Number => FieldKind::Number,
                    types::FieldKind::Boolean => FieldKind::Boolean,
                    types::FieldKind::Json => FieldKind::Json,
                },
                required: f.required,
                default,
                secret: f.secret,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Manifest {
        id: m.id,
        version,
        name: m.name,
        description: m.description,
        config,
        exits: m
            .exits
            .into_iter()
            .map(|e| ExitDecl {
                id: e.id,
                label: e.label,
            })
            .collect(),
        hosts: m.hosts,
    })
}

fn value_to_wit(value: &Value) -> types::Value {
    match value {
        Value::Null => types::Value::Null,
        Value::Bool(b) => types::Value::Boolean(*b),
        Value::Number(n) => types::Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => types::Value::Text(s.clone()),
        other => types::Value::Json(other.to_string()),
    }
}

fn value_from_wit(value: types::Value) -> wasmtime::Result<Value> {
    Ok(match value {
        types::Value::Null => Value::Null,
        types::Value::Boolean(b) => Value::Bool(b),
        types::Value::Number(n) => crate::number_to_json(n),
        types::Value::Text(s) => Value::String(s),
        types::Value::Json(s) => serde_json::from_str(&s).map_err(|e| {
            wasmtime::Error::new(HostCallMisuse(format!(
                "variables.set: value.json is not valid JSON ({e})"
            )))
        })?,
    })
}

fn invocation_to_wit(inv: &Invocation) -> types::Invocation {
    let p = &inv.person;
    types::Invocation {
        flow_id: inv.flow_id.clone(),
        element_id: inv.element_id.clone(),
        participant_id: inv.participant_id.clone(),
        person: types::Person {
            id: p.id.clone(),
            phones: p.phones.clone(),
            emails: p.emails.clone(),
            external_id: p.external_id.clone(),
            attributes: p
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), value_to_wit(v)))
                .collect(),
        },
        config: inv
            .config
            .iter()
            .map(|(k, v)| (k.clone(), value_to_wit(v)))
            .collect(),
    }
}

impl types::Host for ExecState {}

impl http::Host for ExecState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        let result = self
            .http
            .send(
                request.method,
                request.url,
                request.headers,
                request.body,
                request.timeout_ms,
            )
            .await
            .map_err(wasmtime::Error::new)?;
        Ok(match result {
            Ok(r) => Ok(http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(OutboundError::Denied(m)) => Err(http::HttpError::Denied(m)),
            Err(OutboundError::InvalidRequest(m)) => Err(http::HttpError::InvalidRequest(m)),
            Err(OutboundError::Timeout) => Err(http::HttpError::Timeout),
            Err(OutboundError::Connection(m) | OutboundError::ConnectFailed(m)) => {
                Err(http::HttpError::Connection(m))
            }
            Err(OutboundError::ResponseTooLarge(n)) => Err(http::HttpError::ResponseTooLarge(n)),
            // A failure added to the outbound crate later reaches the plugin as a connection
            // error with its message, the closest v0.1.0 has.
            Err(other) => Err(http::HttpError::Connection(other.to_string())),
        })
    }
}

impl variables::Host for ExecState {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<types::Value>> {
        Ok(self.variables.get(&name).map(value_to_wit))
    }

    fn set(&mut self, name: String, value: types::Value) -> wasmtime::Result<()> {
        let value = value_from_wit(value)?;
        self.variables
            .set(name, value)
            .map_err(wasmtime::Error::new)
    }

    fn all(&mut self) -> wasmtime::Result<Vec<(String, types::Value)>> {
        Ok(self
            .variables
            .all()
            .map(|(k, v)| (k.clone(), value_to_wit(v)))
            .collect())
    }
}

impl log::Host for ExecState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log.write(level, message);
        Ok(())
    }
}

impl config::Host for ExecState {
    fn setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.setting(&name))
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.secret(&name))
    }
}
