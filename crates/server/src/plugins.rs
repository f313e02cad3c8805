//! Hot reload of the plugins folder, and `GET /v1/plugins`.
//!
//! The folder is watched (debounced) and, as a fallback for file systems that do not report
//! changes, checked every `[server] plugin_rescan_ms`. When its files changed, or when a
//! removed plugin is still kept for a flow, the runtime loads it again
//! ([`Runtime::reload_plugins`](flowhost::runtime::Runtime::reload_plugins)): off the request
//! path, one reload at a time. Each reload that says something new is kept (the last
//! [`KEEP_RELOADS`]) for `/v1/plugins`, and counted; the runtime logs it.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use flowhost::reload::{KeptPlugin, PluginReload};
use notify_debouncer_mini::new_debouncer;
use notify_debouncer_mini::notify::RecursiveMode;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Reloads remembered for `/v1/plugins`.
pub(crate) const KEEP_RELOADS: usize = 20;

/// How long the folder must be quiet before a change is acted on.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The latest reloads that changed something, newest last, and the plugins kept now.
#[derive(Default)]
pub(crate) struct Reloads(Mutex<(VecDeque<PluginReload>, Vec<KeptPlugin>)>);

impl Reloads {
    /// Records a reload when it says something new: plugins loaded or unloaded, or other
    /// plugins kept or files failing than the reload before. Returns whether it did.
    fn record(&self, reload: PluginReload, before: &PluginReload) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (news, kept) = &mut *guard;
        kept.clone_from(&reload.kept);
        let new = !reload.loaded.is_empty()
            || !reload.unloaded.is_empty()
            || reload.kept != before.kept
            || reload.failed != before.failed;
        if new {
            if news.len() == KEEP_RELOADS {
                news.pop_front();
            }
            news.push_back(reload);
        }
        new
    }

    fn list(&self) -> (Vec<PluginReload>, Vec<KeptPlugin>) {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (guard.0.iter().cloned().collect(), guard.1.clone())
    }
}

/// Watches the plugins folder and reloads it on changes until `shutdown` completes.
pub(crate) async fn watch(state: AppState, every: Duration, shutdown: impl Future<Output = ()>) {
    let runtime = state.runtime();
    let host = runtime.plugin_host();
    let dir = host.plugins_dir().to_owned();
    let changed = Arc::new(Notify::new());
    let wake = changed.clone();
    // Dropping the debouncer stops its thread; it lives as long as this loop.
    let _watching = new_debouncer(DEBOUNCE, move |_| wake.notify_one())
        .and_then(|mut d| {
            d.watcher().watch(&dir, RecursiveMode::NonRecursive)?;
            Ok(d)
        })
        .map_err(|e| {
            tracing::info!(
                dir = %dir.display(),
                error = %e,
                every_ms = every.as_millis() as u64,
                "the plugins folder cannot be watched; it is checked for changes periodically"
            );
        })
        .ok();
    let mut seen = host.folder_fingerprint();
    // What the service started with, as the reload before the first.
    let mut last = PluginReload {
        failed: runtime
            .load_errors()
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..PluginReload::default()
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = changed.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        let now = host.folder_fingerprint();
        // A kept plugin is looked at again each time, to let it go once no flow needs it.
        if now == seen && last.kept.is_empty() {
            continue;
        }
        seen = now;
        let reload = runtime.reload_plugins().await;
        if state.reloads().record(reload.clone(), &last) {
            for file in reload.failed.iter().filter(|f| !last.failed.contains(f)) {
                tracing::warn!(%file, "plugin file not loaded; the plugins in use are unchanged");
            }
            for kept in reload.kept.iter().filter(|k| !last.kept.contains(k)) {
                tracing::warn!(
                    plugin = %kept.plugin,
                    flows = %kept.flows.join(", "),
                    "plugin file removed, but flows still need it: kept loaded until no running flow does"
                );
            }
            let result = if reload.failed.is_empty() {
                "ok"
            } else {
                "failed-files"
            };
            metrics::counter!("flowhost_plugin_reloads_total", "result" => result).increment(1);
        }
        last = reload;
    }
}

/// `GET /v1/plugins`: the plugins in use (with the flows keeping a removed one), the files
/// that did not load, and the latest reloads.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let runtime = state.runtime();
    let (reloads, kept) = state.reloads().list();
    let plugins: Vec<Value> = runtime
        .plugins()
        .iter()
        .map(|p| {
            let mut summary = p.summary();
            if let Some(k) = kept.iter().find(|k| k.plugin == p.key()) {
                summary["kept_for"] = json!(k.flows);
            }
            summary
        })
        .collect();
    let failed: Vec<String> = runtime
        .load_errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    Json(json!({ "plugins": plugins, "failed": failed, "reloads": reloads }))
}
