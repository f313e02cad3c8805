//! What the plugin host needs from the operator: where plugins and compiled artifacts live,
//! the default limits, and each plugin's grants, settings, secrets and limit overrides. The
//! operator writes these in `flowhost.toml` (`plugins_dir`, `cache_dir`, `[limits]`,
//! `[plugins.<id>]`); the composition root hands this part to [`PluginHost::new`].
//!
//! [`PluginHost::new`]: crate::PluginHost::new

use flowhost_outbound::secrets::{SecretSource, resolve};
use serde::{Deserialize, Serialize};
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

/// Declares [`Limits`], its defaults, and [`LimitOverrides`] with one `Option` per limit, from
/// one list, so a new limit is one line.
macro_rules! limits {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty = $default:expr,)*) => {
        /// Per-execution limits of a plugin (`[limits]` in flowhost.toml).
        #[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $($name: $default,)* }
            }
        }

        /// Limit overrides for one plugin (`[plugins.<id>.limits]`); unset fields keep the
        /// defaults.
        #[derive(Clone, Copy, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $($(#[doc = $doc])* pub $name: Option<$ty>,)*
        }

        impl Limits {
            /// These limits with a plugin's overrides applied.
            pub fn with(self, o: &LimitOverrides) -> Limits {
                Limits { $($name: o.$name.unwrap_or(self.$name),)* }
            }
        }
    };
}

limits! {
    /// Wall-clock deadline for one execution.
    deadline_ms: u64 = 2_000,
    /// Linear memory cap.
    memory_mib: u64 = 64,
    /// HTTP requests allowed per execution.
    max_http_requests: u32 = 16,
    /// Largest response body accepted.
    max_response_bytes: u64 = 4 * 1024 * 1024,
    /// Largest outcome data (the JSON a plugin returns with its exit, kept in the journey).
    max_data_bytes: u64 = 64 * 1024,
    /// Longest exit id a plugin may return.
    max_exit_bytes: u64 = 128,
    /// Longest error reason kept; a longer one is cut there, saying so.
    max_error_bytes: u64 = 4 * 1024,
    /// Variables one execution may set.
    max_variables_set: u32 = 100,
    /// Largest variable, name and value as JSON.
    max_variable_bytes: u64 = 1024 * 1024,
    /// Largest total of all the variables a participant carries after an execution.
    max_variables_bytes: u64 = 4 * 1024 * 1024,
    /// Journey log bytes kept per execution (plugin log, stdout and stderr); later lines are
    /// counted, not kept, as past the 200-line cap.
    max_log_bytes: u64 = 64 * 1024,
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
