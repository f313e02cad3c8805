//! `config`: operator settings and secrets for one plugin, configured once in
//! `flowhost.toml` and shared by every flow that uses the plugin.

use flowhost_outbound::secrets::Secrets;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Settings and secrets visible to one plugin.
#[derive(Clone, Debug, Default)]
pub struct ConfigCap {
    settings: Arc<BTreeMap<String, String>>,
    secrets: Secrets,
}

impl ConfigCap {
    /// The plugin's settings and resolved secrets.
    pub fn new(
        settings: Arc<BTreeMap<String, String>>,
        secrets: Arc<BTreeMap<String, String>>,
    ) -> Self {
        ConfigCap {
            settings,
            secrets: Secrets::from(secrets),
        }
    }

    /// A setting.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).cloned()
    }

    /// A secret.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).map(str::to_owned)
    }

    /// Replaces every secret value in `text` with `[secret:<name>]`, so journeys, logs and
    /// error messages never carry one.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// Whether any secret is configured.
    pub fn has_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_values() {
        let cap = ConfigCap::new(
            Arc::default(),
            Arc::new(BTreeMap::from([("token".to_owned(), "s3cr3t".to_owned())])),
        );
        assert_eq!(cap.redact("Bearer s3cr3t!"), "Bearer [secret:token]!");
        assert_eq!(cap.secret("token").as_deref(), Some("s3cr3t"));
        assert_eq!(cap.secret("other"), None);
    }
}
