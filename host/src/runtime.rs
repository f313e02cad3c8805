//! The composition root: from the operator's `flowhost.toml` to a running engine. This is
//! the one place that picks the concrete store and wires the plugin host, the built-in
//! elements and the engine together; the command line (and a server) start here instead of
//! assembling the parts themselves.
//!
//! 1. [`open_store`] opens the database the configuration names.
//! 2. [`Runtime::start`] builds the one outbound HTTP client (plugins, Call API elements and
//!    chatbot webhooks all send through it), the plugin host with its part of the
//!    configuration, loads the plugins folder into a [`PluginSet`], and builds the engine over
//!    the store with the built-ins and those plugins.
//! 3. [`Runtime::load_saved_flows`] loads the flows deployed earlier, so their participants
//!    can continue.
//! 4. [`Runtime::inbound`] takes customers' messages and chatbot events and routes them into
//!    the engine; [`Runtime::engine`] starts participants and runs the scheduler.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowhost::config::OperatorConfig;
//! use flowhost::runtime::Runtime;
//!
//! let runtime = Runtime::start(OperatorConfig::default()).await?;
//! for problem in runtime.load_errors().iter() {
//!     eprintln!("warning: {problem}");
//! }
//! for problem in runtime.load_saved_flows().await? {
//!     eprintln!("warning: {problem}");
//! }
//! let resumed = runtime.engine().resume_due().await?;
//! println!("{} participants resumed", resumed.len());
//! # Ok(()) }
//! ```

use crate::clock::{Clock, SystemClock};
use crate::config::OperatorConfig;
use crate::elements::call_api::CallApiConfigError;
use crate::engine::{Engine, EngineError};
use crate::flow::FlowError;
use crate::messaging::Inbound;
use crate::outbound::{HttpClient, OutboundConfigError};
use crate::plugin::{HostError, LoadError, PluginHost, PluginRegistry, PluginSet};
use crate::store::{SqliteStore, StateStore, StoreError};
use std::sync::Arc;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// An `[outbound]` setting is unusable (for example, a CA file is unreadable).
    #[error(transparent)]
    Outbound(#[from] OutboundConfigError),
    /// The plugin engine could not be built.
    #[error(transparent)]
    PluginHost(#[from] HostError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `[call_api]` setting is unusable.
    #[error(transparent)]
    CallApi(#[from] CallApiConfigError),
}

/// Opens the store the configuration names (`database`: a SQLite file, or a PostgreSQL URL).
pub async fn open_store(config: &OperatorConfig) -> Result<Arc<dyn StateStore>, StoreError> {
    if let Some(url) = config.postgres_url() {
        return Ok(Arc::new(
            flowhost_store_postgres::PostgresStore::connect(url).await?,
        ));
    }
    Ok(Arc::new(SqliteStore::open_with(
        &config.database,
        config.durability,
    )?))
}

/// Builds the plugin host from the configuration, with an outbound client of its own. (A
/// [`Runtime`] shares one client between the plugin host and the built-in elements.)
pub fn plugin_host(config: &OperatorConfig) -> Result<PluginHost, RuntimeError> {
    let client = HttpClient::new(&config.outbound)?;
    Ok(PluginHost::new(&config.plugin_host(), client)?)
}

/// The plugin host, the loaded plugins and the engine over the configured store.
pub struct Runtime {
    config: OperatorConfig,
    pub(crate) plugin_host: PluginHost,
    pub(crate) plugins: PluginSet,
    /// The files that did not load at the last (re)load.
    pub(crate) load_errors: std::sync::RwLock<Arc<Vec<LoadError>>>,
    /// Held while the plugins folder is loaded again.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    engine: Engine,
    inbound: Inbound,
    client: HttpClient,
}

impl Runtime {
    /// Starts everything from `config`, telling time by the system clock. Plugin files that
    /// fail to load are kept in [`Runtime::load_errors`]; the rest load.
    pub async fn start(config: OperatorConfig) -> Result<Self, RuntimeError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Runtime::start`] for checking flows, which must not write: over the configured
    /// database when it exists (the account's chatbots and settings count in the checks), and
    /// over an empty one in memory when it does not, so that checking creates no file.
    pub async fn start_for_checks(config: OperatorConfig) -> Result<Self, RuntimeError> {
        let store: Arc<dyn StateStore> =
            if config.postgres_url().is_some() || config.database.exists() {
                open_store(&config).await?
            } else {
                Arc::new(SqliteStore::in_memory()?)
            };
        Self::start_over(config, store, Arc::new(SystemClock)).await
    }

    /// [`Runtime::start`] with another clock (tests move time by hand).
    pub async fn start_with_clock(
        config: OperatorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RuntimeError> {
        let store = open_store(&config).await?;
        Self::start_over(config, store, clock).await
    }

    /// The outbound client, the plugin host with the plugins folder loaded, and the engine
    /// over `store`.
    async fn start_over(
        config: OperatorConfig,
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RuntimeError> {
        let client = HttpClient::new(&config.outbound)?;
        let plugin_host = PluginHost::new(&config.plugin_host(), client.clone())?;
        let (registry, load_errors) = plugin_host.load_dir().await;
        Self::assemble(
            config,
            client,
            plugin_host,
            registry,
            load_errors,
            store,
            clock,
        )
    }

    /// Wires already-built parts: the engine over `store` with the built-ins (sending through
    /// `client`) and the plugins of `registry`, run by `plugin_host`.
    #[allow(clippy::too_many_arguments)] // one argument per part; a builder would only rename them
    pub fn assemble(
        config: OperatorConfig,
        client: HttpClient,
        plugin_host: PluginHost,
        registry: PluginRegistry,
        load_errors: Vec<LoadError>,
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RuntimeError> {
        let plugins = PluginSet::new(registry);
        let types = crate::elements::builtins(store.clone())
            .with_plugins(plugin_host.clone(), plugins.clone())
            .with_call_api(client.clone(), &config.call_api)?;
        let engine = Engine::new(store, clock, types).with_lease(config.lease_ms as i64);
        let inbound = Inbound::new(engine.clone(), client.clone());
        Ok(Runtime {
            config,
            plugin_host,
            plugins,
            load_errors: std::sync::RwLock::new(Arc::new(load_errors)),
            reloading: tokio::sync::Mutex::new(()),
            engine,
            inbound,
            client,
        })
    }

    /// Loads the flows saved in the store; the ones that no longer compile (a plugin is
    /// gone) are returned, the rest load.
    pub async fn load_saved_flows(&self) -> Result<Vec<FlowError>, EngineError> {
        self.engine.load_saved_flows().await
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where inbound messages and chatbot events come in, routed into the engine.
    pub fn inbound(&self) -> &Inbound {
        &self.inbound
    }

    /// The one outbound HTTP client (its connector applies the operator's network rules).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The plugin host.
    pub fn plugin_host(&self) -> &PluginHost {
        &self.plugin_host
    }

    /// The plugins in use now.
    pub fn plugins(&self) -> Arc<PluginRegistry> {
        self.plugins.snapshot()
    }

    /// The plugin files that did not load (at start, or at the last reload), one error
    /// each.
    pub fn load_errors(&self) -> Arc<Vec<LoadError>> {
        self.load_errors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configuration it started from.
    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }
}
