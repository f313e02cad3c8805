//! The operator's `[call_api]` settings: the hosts Call API elements may reach, the secrets
//! flows reference as `{{secret.NAME}}`, and the response limits.

use flowhost_outbound::secrets::{SecretSource, resolve};
use flowhost_plugin_host::capabilities::VariableLimits;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[call_api]`: what Call API elements may reach and use.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallApiConfig {
    /// Hosts Call API elements may call (default: any public host).
    pub allow_hosts: Vec<String>,
    /// Secrets flows reference as `{{secret.NAME}}`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: u8,
    /// How large the variables a response is mapped into may be: the operator's `[limits]`
    /// (`max_variable_bytes`, `max_variables_bytes`), as for plugins; set from them when the
    /// configuration is read.
    #[serde(skip)]
    pub variable_limits: VariableLimits,
}

impl Default for CallApiConfig {
    fn default() -> Self {
        CallApiConfig {
            allow_hosts: vec!["*".to_owned()],
            secrets: BTreeMap::new(),
            max_response_bytes: 4 * 1024 * 1024,
            max_redirects: 5,
            variable_limits: VariableLimits::default(),
        }
    }
}

impl CallApiConfig {
    /// Resolves secrets to their values; a secret whose environment variable is not set is
    /// left out (see [`CallApiConfig::unset_secrets`]).
    pub fn secret_values(&self) -> BTreeMap<String, String> {
        resolve(&self.secrets)
    }

    /// The secrets read from environment variables that are not set, with the variable.
    pub fn unset_secrets(&self) -> BTreeMap<String, String> {
        self.secrets
            .iter()
            .filter_map(|(name, source)| Some((name.clone(), source.unset_env()?.to_owned())))
            .collect()
    }
}
