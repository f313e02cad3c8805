//! The loaded plugins, by id and version: what flows reference as `plugin:<id>[@<version>]`;
//! and the set in use, a snapshot replaced whole when the plugins folder is loaded again.

use super::*;

impl LoadedPlugin {
    /// What `flowhost plugins list --json` and the service's `/v1/plugins` show of it.
    pub fn summary(&self) -> Value {
        serde_json::json!({
            "id": self.manifest.id,
            "version": self.manifest.version.to_string(),
            "wit_version": self.wit_version,
            "name": self.manifest.name,
            "description": self.manifest.description,
            "exits": self.manifest.exits,
            "config": self.manifest.config,
            "hosts": self.manifest.hosts,
            "file": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "cache": self.cache,
            "limits": self.limits,
            "granted_hosts": self.policy.granted.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            "missing_secrets": self.missing_secrets,
        })
    }
}

/// Loaded plugins, by id and version.
#[derive(Default, Debug)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, BTreeMap<semver::Version, Arc<LoadedPlugin>>>,
}

impl PluginRegistry {
    /// Adds a plugin; refuses a second file with the same id and version.
    pub fn insert(&mut self, plugin: LoadedPlugin) -> Result<Arc<LoadedPlugin>, LoadError> {
        self.insert_loaded(Arc::new(plugin))
    }

    /// Adds a plugin already in use elsewhere (an earlier snapshot); refuses a second one
    /// with the same id and version.
    pub fn insert_loaded(
        &mut self,
        plugin: Arc<LoadedPlugin>,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let versions = self.plugins.entry(plugin.manifest.id.clone()).or_default();
        if let Some(other) = versions.get(&plugin.manifest.version) {
            return Err(LoadError::Duplicate {
                key: plugin.key(),
                other: other.path.clone(),
                path: plugin.path.clone(),
            });
        }
        versions.insert(plugin.manifest.version.clone(), plugin.clone());
        Ok(plugin)
    }

    /// The plugin with this id: the given version, or the newest without one.
    pub fn get(&self, id: &str, version: Option<&semver::Version>) -> Option<&Arc<LoadedPlugin>> {
        let versions = self.plugins.get(id)?;
        match version {
            Some(v) => versions.get(v),
            None => versions.values().next_back(),
        }
    }

    /// Versions available for an id, for messages.
    pub fn versions(&self, id: &str) -> Vec<String> {
        self.plugins
            .get(id)
            .map(|v| v.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every plugin.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values().flat_map(|v| v.values())
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.plugins.values().map(BTreeMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }
}

/// The plugins in use: a [`PluginRegistry`] snapshot that a reload replaces whole. Cheap to
/// clone; every clone sees the same current snapshot.
///
/// Readers take the snapshot once (compiling a flow, listing plugins) and keep it as long as
/// they need; publishing a new one never changes a snapshot already taken, so an execution in
/// flight finishes on the plugin it started with.
#[derive(Clone, Default)]
pub struct PluginSet {
    current: Arc<std::sync::RwLock<Arc<PluginRegistry>>>,
}

impl PluginSet {
    /// A set whose first snapshot is `registry`.
    pub fn new(registry: PluginRegistry) -> Self {
        PluginSet {
            current: Arc::new(std::sync::RwLock::new(Arc::new(registry))),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PluginRegistry> {
        // The lock only guards swapping one `Arc` for another, which cannot panic halfway.
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes `registry` the current snapshot and returns the one it replaces.
    pub fn publish(&self, registry: PluginRegistry) -> Arc<PluginRegistry> {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *current, Arc::new(registry))
    }
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PluginSet").field(&self.snapshot()).finish()
    }
}
