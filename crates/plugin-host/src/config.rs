//! What the plugin host needs from the operator: where plugins and compiled artifacts live,
//! the default limits, and each plugin's grants, settings, secrets and limit overrides. The
//! operator writes these in `flowhost.toml` (`plugins_dir`, `cache_dir`, `[limits]`,
//! `[plugins.<id>]`); the composition root hands this part to [`PluginHost::new`].
//!
//! [`PluginHost::new`]: crate::PluginHost::new

use flowhost_outbound::secrets::{SecretSource, resolve};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The plugin host's configuration.
#[derive(Clone, Debug)]
pub struct PluginHostConfig {
    /// Folder scanned for `*.wasm` plugins.
    pub plugins_dir: PathBuf,
    /// Folder for compiled plugin artifacts.
    pub cache_dir: PathBuf,
    /// Limits applied to every plugin unless overridden.
    pub limits: Limits,
    /// Per-plugin grants, settings and secrets, by plugin id.
    pub plugins: BTreeMap<String, PluginGrant>,
}

impl Default for PluginHostConfig {
    fn default() -> Self {
        PluginHostConfig {
            plugins_dir: PathBuf::from("plugins"),
            cache_dir: PathBuf::from(".flowhost/cache"),
            limits: Limits::default(),
            plugins: BTreeMap::new(),
        }
    }
}

impl PluginHostConfig {
    /// The limits for a plugin.
    pub fn limits_for(&self, plugin_id: &str) -> Limits {
        match self.plugins.get(plugin_id) {
            Some(grant) => self.limits.with(&grant.limits),
            None => self.limits,
        }
    }

    /// The largest memory cap any plugin may have, which sizes the instance pool.
    pub fn max_memory_mib(&self) -> u64 {
        self.plugins
            .keys()
            .map(|id| self.limits_for(id).memory_mib)
            .chain([self.limits.memory_mib])
            .max()
            .unwrap_or(64)
    }
}

/// Per-execution limits of a plugin.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock deadline for one execution.
    pub deadline_ms: u64,
    /// Linear memory cap.
    pub memory_mib: u64,
    /// HTTP requests allowed per execution.
    pub max_http_requests: u32,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 2_000,
            memory_mib: 64,
            max_http_requests: 16,
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Limit overrides for one plugin; unset fields keep the defaults.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::deadline_ms`].
    pub deadline_ms: Option<u64>,
    /// See [`Limits::memory_mib`].
    pub memory_mib: Option<u64>,
    /// See [`Limits::max_http_requests`].
    pub max_http_requests: Option<u32>,
    /// See [`Limits::max_response_bytes`].
    pub max_response_bytes: Option<u64>,
}

/// What the operator grants and configures for one plugin.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrant {
    /// Hosts the plugin may reach (intersected with what it declares).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Non-secret settings, read by the plugin with `config.setting`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Secrets, read by the plugin with `config.secret`.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: LimitOverrides,
}

impl Limits {
    /// These limits with a plugin's overrides applied.
    pub fn with(self, o: &LimitOverrides) -> Limits {
        Limits {
            deadline_ms: o.deadline_ms.unwrap_or(self.deadline_ms),
            memory_mib: o.memory_mib.unwrap_or(self.memory_mib),
            max_http_requests: o.max_http_requests.unwrap_or(self.max_http_requests),
            max_response_bytes: o.max_response_bytes.unwrap_or(self.max_response_bytes),
        }
    }
}

impl PluginGrant {
    /// Resolves secrets to their values.
    pub fn secret_values(&self) -> BTreeMap<String, String> {
        resolve(&self.secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_plugin_overrides_and_pool_size() {
        let grant = |limits| PluginGrant {
            limits,
            ..PluginGrant::default()
        };
        let config = PluginHostConfig {
            limits: Limits {
                deadline_ms: 1000,
                ..Limits::default()
            },
            plugins: BTreeMap::from([
                (
                    "a".to_owned(),
                    grant(LimitOverrides {
                        memory_mib: Some(256),
                        ..LimitOverrides::default()
                    }),
                ),
                ("b".to_owned(), grant(LimitOverrides::default())),
            ]),
            ..PluginHostConfig::default()
        };
        let a = config.limits_for("a");
        assert_eq!(
            (a.deadline_ms, a.memory_mib, a.max_http_requests),
            (1000, 256, 16)
        );
        assert_eq!(config.limits_for("b").memory_mib, 64);
        assert_eq!(config.limits_for("unknown").deadline_ms, 1000);
        assert_eq!(config.max_memory_mib(), 256);
    }
}
