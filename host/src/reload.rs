//! Loading the plugins folder again while the engine runs (hot reload).
//!
//! [`Runtime::reload_plugins`] reads the folder, keeps the plugins whose files did not change,
//! loads the new and changed ones off the engine's path, publishes the result as the new
//! snapshot, and builds again the flows that use a plugin id that changed:
//! - a flow naming `plugin:<id>` runs the newest loaded version for steps that start after
//!   the reload; executions in flight finish on the version they started with (they hold it);
//! - a flow naming `plugin:<id>@<version>` keeps that version while it is loaded;
//! - a plugin whose file was removed, but which a flow that still runs (not draft, not
//!   canceled) needs, stays loaded and is reported as kept, until no such flow needs it;
//! - a file that does not load is reported and changes nothing else.
//!
//! Loads and rebuilds are logged here; files failing and plugins kept are in the report, for
//! the caller to tell when they are news (they repeat on every reload while they last).

use crate::runtime::Runtime;
use flowhost_engine::CompiledFlow;
use flowhost_plugin_host::{LoadedPlugin, PluginRegistry};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What one reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PluginReload {
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// Plugins (`id@version`) loaded from new or changed files.
    pub loaded: Vec<String>,
    /// Plugins no longer loaded.
    pub unloaded: Vec<String>,
    /// Plugins whose files are gone but that flows still need, with those flows.
    pub kept: Vec<KeptPlugin>,
    /// Files that did not load, one line each.
    pub failed: Vec<String>,
    /// Flows built again on the new plugins.
    pub rebuilt: Vec<String>,
    /// Flows that could not be built on the new plugins, with why; they keep running on the
    /// plugins they were built with.
    pub not_rebuilt: Vec<String>,
}

/// A plugin kept loaded for the flows that need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptPlugin {
    /// `id@version`.
    pub plugin: String,
    /// The flows that need it.
    pub flows: Vec<String>,
}

/// A flow whose participants may still run: its plugins must stay.
fn still_runs(flow: &CompiledFlow) -> bool {
    flow.def.status.has_participants_to_run()
}

/// The plugin ids a flow's elements name, and for each `plugin:` element whether it pins a
/// version and which plugin it was built with (`id@version`).
fn plugin_elements(flow: &CompiledFlow) -> Vec<(String, bool, String)> {
    flow.element_types()
        .into_iter()
        .filter_map(|(_, kind, resolved)| {
            let spec = kind.strip_prefix("plugin:")?;
            let built_with = resolved.strip_prefix("plugin:")?.to_owned();
            let (id, pinned) = match spec.split_once('@') {
                Some((id, _)) => (id, true),
                None => (spec, false),
            };
            Some((id.to_owned(), pinned, built_with))
        })
        .collect()
}

fn keys(registry: &PluginRegistry) -> BTreeMap<String, Arc<LoadedPlugin>> {
    registry.iter().map(|p| (p.key(), p.clone())).collect()
}

impl Runtime {
    /// Loads the plugins folder again and puts the result in use (see the module
    /// documentation). One reload runs at a time.
    pub async fn reload_plugins(&self) -> PluginReload {
        let _one_at_a_time = self.reloading.lock().await;
        let before = self.plugins.snapshot();
        let (mut fresh, errors) = self.plugin_host.reload_dir(&before).await;
        let flows = self.engine().compiled_flows();
        let mut report = PluginReload {
            at: self.engine().now(),
            failed: errors.iter().map(ToString::to_string).collect(),
            ..PluginReload::default()
        };

        // Plugins gone from the folder that running flows still need stay.
        let mut kept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let old = keys(&before);
        let loaded_now = keys(&fresh);
        for flow in flows.iter().filter(|f| still_runs(f)) {
            for (id, pinned, built_with) in plugin_elements(flow) {
                let served = if pinned {
                    loaded_now.contains_key(&built_with)
                } else {
                    fresh.get(&id, None).is_some()
                };
                if !served && old.contains_key(&built_with) {
                    kept.entry(built_with)
                        .or_default()
                        .insert(flow.def.id.clone());
                }
            }
        }
        for (plugin, needed_by) in kept {
            // Both present only if a file with that id and version came back meanwhile.
            let _ = fresh.insert_loaded(old[&plugin].clone());
            report.kept.push(KeptPlugin {
                plugin,
                flows: needed_by.into_iter().collect(),
            });
        }

        let new = keys(&fresh);
        for (key, plugin) in &new {
            if old.get(key).is_none_or(|o| !Arc::ptr_eq(o, plugin)) {
                report.loaded.push(key.clone());
            }
        }
        for key in old.keys() {
            if !new.contains_key(key) {
                report.unloaded.push(key.clone());
            }
        }
        let changed_ids: BTreeSet<&str> = report
            .loaded
            .iter()
            .chain(&report.unloaded)
            .map(|k| {
                old.get(k)
                    .or(new.get(k))
                    .map_or(k.as_str(), |p| p.manifest.id.as_str())
            })
            .collect();
        self.plugins.publish(fresh);
        *self.load_errors.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(errors);

        for flow in &flows {
            if !plugin_elements(flow)
                .iter()
                .any(|(id, ..)| changed_ids.contains(id.as_str()))
            {
                continue;
            }
            match self.engine().rebuild(&flow.def.id) {
                Ok(_) => report.rebuilt.push(flow.def.id.clone()),
                Err(e) => report.not_rebuilt.push(format!("{}: {e}", flow.def.id)),
            }
        }
        // Saved flows that did not build here before may now.
        if !report.loaded.is_empty() {
            match self.engine().load_unbuilt_flows().await {
                Ok((loaded, _still_not)) => report.rebuilt.extend(loaded),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the saved flows that did not build")
                }
            }
        }
        for flow in &report.not_rebuilt {
            tracing::warn!(%flow, "flow keeps the plugins it was built with");
        }
        if !report.loaded.is_empty() || !report.unloaded.is_empty() {
            tracing::info!(
                loaded = %report.loaded.join(", "),
                unloaded = %report.unloaded.join(", "),
                rebuilt = %report.rebuilt.join(", "),
                "plugins reloaded"
            );
        }
        report
    }
}
