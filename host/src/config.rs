//! Operator configuration (`flowhost.toml`): folders, default limits, and per-plugin grants,
//! settings, secrets and limit overrides.
//!
//! ```toml
//! plugins_dir = "plugins"
//! database = "flowhost.db"
//!
//! [limits]               # defaults for every plugin
//! deadline_ms = 2000
//! memory_mib = 64
//! max_http_requests = 16
//! max_response_bytes = 4194304
//!
//! [plugins.order-status]
//! allow_hosts = ["127.0.0.1:8080"]
//! settings = { base_url = "http://127.0.0.1:8080" }
//! secrets = { api_token = { env = "SHOP_API_TOKEN" } }
//! limits = { deadline_ms = 5000 }
//! ```

pub use crate::retention::RetentionConfig;
pub use flowhost_elements::call_api::CallApiConfig;
pub use flowhost_outbound::OutboundConfig;
pub use flowhost_outbound::secrets::SecretSource;
pub use flowhost_plugin_host::config::{LimitOverrides, Limits, PluginGrant, PluginHostConfig};
pub use flowhost_store::Durability;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything the operator configures.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Folder scanned for `*.wasm` plugins.
    #[serde(default = "default_plugins_dir")]
    pub plugins_dir: PathBuf,
    /// Where participants and journeys are kept: a SQLite file (one node), or a PostgreSQL
    /// URL, `postgres://user@host:port/db`, shared by several nodes (the password in
    /// `PGPASSWORD`, not in the file).
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Folder for compiled plugin artifacts.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// Limits applied to every plugin unless overridden.
    #[serde(default)]
    pub limits: Limits,
    /// Per-plugin grants, settings and secrets, by plugin id.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginGrant>,
    /// Rules for every outbound request (plugins and Call API alike).
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// What Call API elements may reach, and the secrets their requests may use.
    #[serde(default)]
    pub call_api: CallApiConfig,
    /// `flowhost serve`: where it listens and who may call it.
    #[serde(default)]
    pub server: ServerConfig,
    /// What a committed step survives: `"fast"` (a process crash) or `"full"` (a power
    /// loss too, at a disk flush per commit).
    #[serde(default)]
    pub durability: Durability,
    /// How long an engine's claim on a participant lasts, renewed while a step runs: after
    /// a crash, another engine (or the restarted one) takes its participants over this long
    /// after their last renewal.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// How long what is done is kept, and how often it is pruned.
    #[serde(default)]
    pub retention: RetentionConfig,
}

fn default_lease_ms() -> u64 {
    flowhost_engine::LEASE_MS as u64
}

/// `[server]`: the service `flowhost serve` runs.
///
/// ```toml
/// [server]
/// listen = "127.0.0.1:8080"
/// # Who may call the API: the SHA-256 of a key (`flowhost serve --hash-key` prints it),
/// # or a key read from the environment when the service starts.
/// api_keys = [
///     { name = "ops", sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" },
///     { name = "ci", env = "FLOWHOST_API_KEY" },
/// ]
/// grace_period_ms = 10000     # in-flight work gets this long to finish on shutdown
/// max_body_bytes = 4194304    # larger request bodies get 413
/// scheduler_every_ms = 200    # how often due participants are looked for
/// participant_calls_per_second = 20   # calls adding participants beyond this get 429
/// plugin_rescan_ms = 5000     # the plugins folder is watched, and checked this often too
///
/// # Channel webhooks (POST /v1/channels/sms/messages) prove themselves with this secret:
/// # an HMAC-SHA256 of the body in X-Flowhost-Signature, or the secret as a bearer token.
/// [server.channels.sms]
/// secret = { env = "SMS_WEBHOOK_SECRET" }
/// # Bots' and agents' replies are POSTed here (see ChannelConfig).
/// deliver = { url = "https://sms-gateway.example/send" }
///
/// # A webhook chatbot's later replies and session ends prove themselves with this secret.
/// [server.chatbots.helper]
/// secret = { env = "HELPER_BOT_SECRET" }
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The keys that may call the API.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// How long in-flight requests and steps may take to finish on shutdown.
    #[serde(default = "default_grace_period_ms")]
    pub grace_period_ms: u64,
    /// Largest request body accepted.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How often the scheduler looks for due participants.
    #[serde(default = "default_scheduler_every_ms")]
    pub scheduler_every_ms: u64,
    /// Calls adding participants (each up to 1000) this node takes per second, with as many
    /// in a burst; more get 429 with `Retry-After`.
    #[serde(default = "default_participant_calls_per_second")]
    pub participant_calls_per_second: u32,
    /// Channels, by name (`sms`, `whatsapp`, …): their inbound webhooks and where bots' and
    /// agents' messages are sent. A channel not listed takes no webhooks, and its outgoing
    /// messages wait (pending) until it gets a connector.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Webhook chatbots that report back later (`POST /v1/chatbots/<id>/sessions/<s>/events`),
    /// by chatbot id; a chatbot not listed cannot call back.
    #[serde(default)]
    pub chatbots: BTreeMap<String, ChatbotHookConfig>,
    /// How `notify_url` callbacks are sent.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// How often the plugins folder is checked for changes, besides watching it.
    #[serde(default = "default_plugin_rescan_ms")]
    pub plugin_rescan_ms: u64,
}

fn default_plugin_rescan_ms() -> u64 {
    5_000
}

/// `[server.notify]`: the callbacks to a `notify_url` given when participants are added.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// How long one attempt may take.
    pub timeout_ms: u64,
    /// Attempts in all before a callback is given up.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one.
    pub backoff_ms: u64,
    /// The longest wait between attempts.
    pub max_backoff_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timeout_ms: default_deliver_timeout_ms(),
            max_attempts: default_deliver_attempts(),
            backoff_ms: default_deliver_backoff_ms(),
            max_backoff_ms: default_deliver_max_backoff_ms(),
        }
    }
}

/// `[server.chatbots.<id>]`: how a webhook chatbot proves its callbacks come from it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotHookConfig {
    /// The shared secret: the key of the body's HMAC-SHA256 signature, or the bearer token.
    pub secret: SecretSource,
}

/// `[server.channels.<channel>]`: how the channel's webhook proves it comes from the
/// provider, and where the channel's outgoing messages go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The shared secret: the key of the body's HMAC-SHA256 signature, or the bearer token.
    /// Without one the channel takes no webhooks.
    #[serde(default)]
    pub secret: Option<SecretSource>,
    /// The connector that sends bots' and agents' messages to people.
    #[serde(default)]
    pub deliver: Option<DeliverConfig>,
}

/// `[server.channels.<channel>.deliver]`: an HTTP endpoint that takes each outgoing message
/// as a JSON `POST` (see `docs/api.md`, "Outgoing messages").
///
/// ```toml
/// [server.channels.sms.deliver]
/// url = "https://sms-gateway.example/send"
/// headers = { Authorization = { env = "SMS_GATEWAY_AUTH" } }
/// timeout_ms = 10000      # one attempt
/// max_attempts = 6        # then the message is marked failed
/// backoff_ms = 1000       # the wait after the first failed attempt; it doubles each time
/// max_backoff_ms = 300000
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverConfig {
    /// The endpoint.
    pub url: String,
    /// Headers added to every request; values may come from the environment.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretSource>,
    /// How long one attempt may take.
    #[serde(default = "default_deliver_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts in all before a message is marked failed.
    #[serde(default = "default_deliver_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one.
    #[serde(default = "default_deliver_backoff_ms")]
    pub backoff_ms: u64,
    /// The longest wait between attempts.
    #[serde(default = "default_deliver_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_deliver_timeout_ms() -> u64 {
    10_000
}

fn default_deliver_attempts() -> u32 {
    6
}

fn default_deliver_backoff_ms() -> u64 {
    1_000
}

fn default_deliver_max_backoff_ms() -> u64 {
    300_000
}

/// One API key the service accepts: its name (in logs) and where the key comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds it; logged with each request, the key never is.
    pub name: String,
    /// The key's SHA-256, in hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_grace_period_ms() -> u64 {
    10_000
}

fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_scheduler_every_ms() -> u64 {
    200
}

fn default_participant_calls_per_second() -> u32 {
    20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            api_keys: Vec::new(),
            grace_period_ms: default_grace_period_ms(),
            max_body_bytes: default_max_body_bytes(),
            scheduler_every_ms: default_scheduler_every_ms(),
            participant_calls_per_second: default_participant_calls_per_second(),
            channels: BTreeMap::new(),
            chatbots: BTreeMap::new(),
            notify: NotifyConfig::default(),
            plugin_rescan_ms: default_plugin_rescan_ms(),
        }
    }
}

fn default_plugins_dir() -> PathBuf {
    PathBuf::from("plugins")
}

fn default_database() -> PathBuf {
    PathBuf::from("flowhost.db")
}

fn default_cache_dir() -> PathBuf {
    PathBuf::from(".flowhost/cache")
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            plugins_dir: default_plugins_dir(),
            database: default_database(),
            cache_dir: default_cache_dir(),
            limits: Limits::default(),
            plugins: BTreeMap::new(),
            outbound: OutboundConfig::default(),
            call_api: CallApiConfig::default(),
            server: ServerConfig::default(),
            durability: Durability::default(),
            lease_ms: default_lease_ms(),
            retention: RetentionConfig::default(),
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read operator config: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {message}; see the example in the README")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key path.
        message: String,
    },
}

impl OperatorConfig {
    /// Reads `path`; folders in it are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let url = config.postgres_url().is_some();
        for dir in [
            Some(&mut config.plugins_dir),
            (!url).then_some(&mut config.database),
            Some(&mut config.cache_dir),
        ]
        .into_iter()
        .flatten()
        {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        for file in &mut config.outbound.extra_ca_files {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }

    /// The PostgreSQL URL `database` names, when it names one rather than a SQLite file.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database
            .to_str()
            .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
    }

    /// Parses TOML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: OperatorConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned()
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default(),
        })?;
        // A secret from an environment variable that is not set is not an error here: it is
        // reported by the flows that use it (a Call API element, a plugin that needs it), so
        // one file serves operators whose flows use different secrets.
        // Call API responses mapped into variables keep the same `[limits]` as plugins.
        config.call_api.variable_limits = (&config.limits).into();
        Ok(config)
    }

    /// The plugin host's part: folders, limits and per-plugin grants.
    pub fn plugin_host(&self) -> PluginHostConfig {
        PluginHostConfig {
            plugins_dir: self.plugins_dir.clone(),
            cache_dir: self.cache_dir.clone(),
            limits: self.limits,
            plugins: self.plugins.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_sections_become_the_plugin_host_part() {
        let text = r#"
            [limits]
            deadline_ms = 1000
            max_variable_bytes = 2048
            [plugins.a]
            limits = { memory_mib = 256, max_data_bytes = 100 }
            settings = { base_url = "http://x" }
            secrets = { token = "inline" }
            [plugins.b]
        "#;
        let config = OperatorConfig::parse(text, Path::new("f.toml")).unwrap();
        let a = config.plugin_host().limits_for("a");
        assert_eq!(
            (a.deadline_ms, a.memory_mib, a.max_http_requests),
            (1000, 256, 16)
        );
        assert_eq!((a.max_data_bytes, a.max_variable_bytes), (100, 2048));
        // Call API's response mapping keeps the same variable limits.
        assert_eq!(config.call_api.variable_limits.max_one, 2048);
        assert_eq!(config.plugins["a"].secret_values()["token"], "inline");
        assert_eq!(
            format!("{:?}", config.plugins["a"].secrets),
            r#"{"token": <redacted>}"#
        );
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let err = OperatorConfig::parse("[limits]\ndeadline = 5", Path::new("ops/flowhost.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ops/flowhost.toml: unknown field `deadline`"),
            "{err}"
        );
        // An unset variable is not the file's error: the flows that use the secret say so.
        let config = OperatorConfig::parse(
            "[call_api]\nsecrets = { key = { env = \"FLOWHOST_TEST_SURELY_UNSET\" } }",
            Path::new("f.toml"),
        )
        .unwrap();
        assert!(config.call_api.secret_values().is_empty());
        assert_eq!(
            config.call_api.unset_secrets()["key"],
            "FLOWHOST_TEST_SURELY_UNSET"
        );
    }

    #[test]
    fn the_example_file_parses() {
        // As shipped: the variables its secrets name need not be set to read it.
        let text = include_str!("../../flowhost.example.toml");
        let config = OperatorConfig::parse(text, Path::new("flowhost.example.toml")).unwrap();
        assert_eq!(config.call_api.allow_hosts, ["*"]);
        assert_eq!(
            (config.durability, config.lease_ms),
            (Durability::Fast, 30_000)
        );
        assert!(config.call_api.secrets.contains_key("shop_token"));
        assert_eq!(config.outbound.connect_timeout_ms, 5000);
        assert_eq!(
            config.plugin_host().limits_for("order-status").deadline_ms,
            5000
        );
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(
            config.server.api_keys[0].env.as_deref(),
            Some("FLOWHOST_API_KEY")
        );
        assert!(config.server.channels.contains_key("sms"));
    }

    #[test]
    fn load_resolves_folders_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowhost.toml");
        std::fs::write(&path, "plugins_dir = \"p\"\ndatabase = \"/abs/db\"").unwrap();
        let config = OperatorConfig::load(&path).unwrap();
        assert_eq!(config.plugins_dir, dir.path().join("p"));
        assert_eq!(config.database, Path::new("/abs/db"));
        assert_eq!(config.cache_dir, dir.path().join(".flowhost/cache"));
    }
}
