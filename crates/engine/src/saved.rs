//! Loading the flows saved in the store: all of them after a restart, the ones saved since
//! the last look (by another process, say), and the ones that did not build here before.

use super::*;
use flowhost_store::SavedFlow;
use std::sync::atomic::Ordering;

impl Engine {
    /// Loads every flow saved in the store (after a restart). Flows that no longer compile,
    /// e.g. because a plugin is gone, are returned as errors; the rest load.
    pub async fn load_saved_flows(&self) -> Result<Vec<FlowError>, EngineError> {
        let saved = self.inner.store.flows().await?;
        Ok(self.load(saved).1)
    }

    /// Loads the flows saved since this engine last looked (deployed, changed or paused
    /// through another process, or through this one): only those, so that a scheduler round
    /// reads nothing when no flow changed. The ids loaded, and the flows that did not
    /// compile (each reported once, with the change that brought it).
    pub async fn load_changed_flows(&self) -> Result<(Vec<String>, Vec<FlowError>), EngineError> {
        let seen = self.inner.flows_seen.load(Ordering::SeqCst);
        let saved = self.inner.store.flows_changed_since(seen).await?;
        Ok(self.load(saved))
    }

    /// Builds again the saved flows that did not build here before (see
    /// [`Engine::unbuilt_flows`]), after the plugins changed: the ids now loaded, and the
    /// flows that still do not build.
    pub async fn load_unbuilt_flows(&self) -> Result<(Vec<String>, Vec<FlowError>), EngineError> {
        let wanted: Vec<String> = self.unbuilt().keys().cloned().collect();
        if wanted.is_empty() {
            return Ok(Default::default());
        }
        let saved = self.inner.store.flows().await?;
        Ok(self.load(
            saved
                .into_iter()
                .filter(|f| wanted.contains(&f.id))
                .collect(),
        ))
    }

    /// The deployed flows that this engine could not build (a plugin they name is not
    /// loaded here, say), each with why; flows of other nodes it cannot run. A flow that
    /// built before keeps running the version it was built at.
    pub fn unbuilt_flows(&self) -> Vec<UnbuiltFlow> {
        self.unbuilt().values().cloned().collect()
    }

    pub(super) fn unbuilt(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, UnbuiltFlow>> {
        self.inner.unbuilt.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self, saved: Vec<SavedFlow>) -> (Vec<String>, Vec<FlowError>) {
        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        for saved in saved {
            self.inner
                .flows_seen
                .fetch_max(saved.changed, Ordering::SeqCst);
            let source = format!("saved flow {:?}", saved.id);
            // Saved flows were checked when activated; what the account looked like then
            // is not checked again, so their participants can always continue.
            let def = FlowDef::parse(&saved.definition, &source);
            let status = def.as_ref().map_or(FlowStatus::Active, |d| d.status);
            match def.and_then(|def| self.build(def, &source)) {
                Ok(mut flow) => {
                    flow.version = saved.version;
                    self.forget_earlier(&saved.id);
                    self.unbuilt().remove(&saved.id);
                    loaded.push(saved.id.clone());
                    self.inner
                        .flows
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(saved.id, Arc::new(flow));
                }
                Err(e) => {
                    self.unbuilt().insert(
                        saved.id.clone(),
                        UnbuiltFlow {
                            flow: saved.id,
                            version: saved.version,
                            status,
                            reason: e.to_string(),
                        },
                    );
                    errors.push(e);
                }
            }
        }
        (loaded, errors)
    }
}
