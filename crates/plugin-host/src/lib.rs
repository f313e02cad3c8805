//! The sandboxed plugin host: loads custom-element components and runs them.
//!
//! How it is wired:
//!
//! 1. [`PluginHost::new`] builds one wasmtime `Engine` with the component model, async
//!    support, epoch interruption, and a pooling allocator with copy-on-write memory images.
//!    A background thread advances the epoch every [`EPOCH_TICK`].
//! 2. One `Linker` gets WASI p2 (without preopens, environment or sockets), `wasi:http`, and
//!    the imports of every supported WIT version (`since_v0_1_0`, …). Each import is served by
//!    one capability module in [`capabilities`].
//! 3. [`PluginHost::load_dir`] reads every `*.wasm` of the plugins folder, compiles it (or
//!    loads it from the [`cache`]), recognises its WIT version by its export name, creates one
//!    `InstancePre` and calls `describe`. A bad file yields one [`LoadError`]; the rest load.
//! 4. [`PluginHost::execute`] runs one element execution in a fresh `Store`: memory capped by
//!    a resource limiter, time capped by the epoch deadline and a wall-clock timeout, HTTP
//!    capped by the outbound policy. Every failure becomes an [`ExecFailure`]; the `Store` is
//!    dropped whatever happens, so no instance outlives a trap. It is dropped after the
//!    result is taken out of it, in a task on the caller's thread where there is one, so
//!    that returning its slots to the pool is not on the step's path (`drop_off_path`).
//!
//! 5. A [`PluginSet`] holds the registry in use as a snapshot that is replaced whole: flows
//!    compile against the current snapshot, and a reload publishes a new one while executions
//!    already running keep the plugins they started with.
//!
//! The host depends on no flow, store or engine type: an element adapter elsewhere turns an
//! [`Execution`] into a step. It takes its [`config::PluginHostConfig`] and the one outbound
//! [`HttpClient`] it sends through from the composition root.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use flowhost_outbound::{HttpClient, OutboundConfig};
//! use flowhost_plugin_host::config::PluginHostConfig;
//! use flowhost_plugin_host::{PluginHost, PluginSet};
//!
//! let client = HttpClient::new(&OutboundConfig::default())?;
//! let host = PluginHost::new(&PluginHostConfig::default(), client)?;
//! let (registry, errors) = host.load_dir().await;
//! for error in &errors {
//!     eprintln!("{error}");
//! }
//! let plugins = PluginSet::new(registry);
//! println!("{} plugins", plugins.snapshot().len());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bounds;
pub mod cache;
pub mod capabilities;
pub mod config;
mod load;
pub mod manifest;
mod outcome;
mod registry;
mod since_v0_1_0;
mod state;
mod stdio;

use bounds::cut_reason;
pub use load::LoadError;
pub use outcome::{ElementFailure, ExecFailure, Execution, Outcome};
use outcome::{check_outcome, classify_trap, trap_reason};
pub use registry::{PluginRegistry, PluginSet};

use cache::{ArtifactCache, CacheStatus};
use capabilities::{ConfigCap, HttpCap, LogLevel, LogLine, RequestLimitExceeded};
use config::{Limits, PluginHostConfig};
use flowhost_outbound::{HostPattern, HttpClient, OutboundPolicy};
use flowhost_types::person::Person;
use manifest::{ERROR_EXIT, Manifest, valid_id};
use serde_json::Value;
use state::{ExecState, MemoryLimitExceeded};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// How often the epoch advances; deadlines are measured in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// WIT versions this host serves, oldest first.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &[since_v0_1_0::VERSION];

/// The package and interface a plugin exports.
const ELEMENT_EXPORT: &str = "flowhost:element/element@";

/// Freed memory slots decommitted together (see `build_engine`).
const DECOMMIT_BATCH: usize = 32;

/// Bytes of each table zeroed in place when its slot is freed, instead of decommitted.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Concurrent executions (and pooled instances).
const POOL_INSTANCES: u32 = 256;

/// Bindings of one loaded plugin, by the WIT version it was built against.
#[derive(Clone)]
enum Bindings {
    V0_1_0(since_v0_1_0::Pre),
}

/// A plugin ready to run.
pub struct LoadedPlugin {
    /// The file it came from.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The WIT version it was built against.
    pub wit_version: &'static str,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file, in hex.
    pub sha256: String,
    /// Whether compiling was needed.
    pub cache: CacheStatus,
    /// Effective limits.
    pub limits: Limits,
    /// Effective outbound policy.
    pub policy: Arc<OutboundPolicy>,
    /// Required secrets the operator has not set.
    pub missing_secrets: Vec<String>,
    /// The environment variables the operator reads its secrets from, by secret.
    pub secret_env: BTreeMap<String, String>,
    config: ConfigCap,
    bindings: Bindings,
}

impl LoadedPlugin {
    fn has_missing_defaults(&self, inv: &Invocation) -> bool {
        self.manifest.config.iter().any(|f| {
            f.default.is_some() && !f.secret && !inv.config.iter().any(|(k, _)| *k == f.name)
        })
    }

    /// The invocation with the manifest's defaults added for fields it leaves out.
    fn apply_defaults(&self, inv: &Invocation) -> Invocation {
        let mut inv = inv.clone();
        for field in &self.manifest.config {
            if let Some(default) = &field.default
                && !field.secret
                && !inv.config.iter().any(|(k, _)| *k == field.name)
            {
                inv.config.push((field.name.clone(), default.clone()));
            }
        }
        inv
    }

    /// `id@version`.
    pub fn key(&self) -> String {
        format!("{}@{}", self.manifest.id, self.manifest.version)
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version.to_string())
            .field("wit_version", &self.wit_version)
            .finish_non_exhaustive()
    }
}

/// One execution of a plugin element.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// Flow id.
    pub flow_id: String,
    /// Element id in the flow.
    pub element_id: String,
    /// Participant id.
    pub participant_id: String,
    /// The person.
    pub person: Person,
    /// Element configuration, defaults applied.
    pub config: Vec<(String, Value)>,
    /// What the `Idempotency-Key` header of each request the plugin sends starts with
    /// (`participant:step`; the request's number follows); `None` sends none.
    pub idempotency_key: Option<String>,
}

/// Could not start the plugin host.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin engine: {0}")]
pub struct HostError(String);

/// The plugin host. Cheap to clone.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    client: HttpClient,
    linker: Linker<ExecState>,
    config: PluginHostConfig,
    cache: ArtifactCache,
    /// One per store in existence: a permit is given back when its store is dropped.
    permits: Arc<tokio::sync::Semaphore>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for HostInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl PluginHost {
    /// Builds the engine and linker for this configuration; every request a plugin makes
    /// leaves through `client`.
    pub fn new(config: &PluginHostConfig, client: HttpClient) -> Result<Self, HostError> {
        let engine = build_engine(config).map_err(|e| HostError(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        compose_linker(&mut linker).map_err(|e| HostError(e.to_string()))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("flowhost-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| HostError(format!("epoch thread: {e}")))?;
        Ok(PluginHost {
            inner: Arc::new(HostInner {
                cache: ArtifactCache::new(&config.cache_dir, &engine),
                engine,
                client,
                linker,
                config: config.clone(),
                permits: Arc::new(tokio::sync::Semaphore::new(POOL_INSTANCES as usize)),
                stop_ticker,
            }),
        })
    }

    /// The wasmtime engine (for benchmarks and tools).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The artifact cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.inner.cache
    }

    fn new_store(&self, state: ExecState, deadline_ms: u64) -> Store<ExecState> {
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = deadline_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Runs the plugin for one participant. Never panics or returns early on plugin
    /// misbehaviour: every failure is in [`Execution::result`].
    pub async fn execute(
        &self,
        plugin: &LoadedPlugin,
        invocation: &Invocation,
        variables: BTreeMap<String, Value>,
    ) -> Execution {
        let span = tracing::debug_span!(
            "plugin",
            plugin = %plugin.key(),
            participant = %invocation.participant_id,
        );
        let started = std::time::Instant::now();
        let execution = self
            .execute_inner(plugin, invocation, variables)
            .instrument(span)
            .await;
        metrics::histogram!("flowhost_plugin_execution_seconds", "plugin" => plugin.key())
            .record(started.elapsed().as_secs_f64());
        execution
    }

    async fn execute_inner(
        &self,
        plugin: &LoadedPlugin,
        invocation: &Invocation,
        variables: BTreeMap<String, Value>,
    ) -> Execution {
        let started = Instant::now();
        let permit = self.inner.permits.clone().acquire_owned().await;
        let limits = plugin.limits;
        let state = ExecState::new(
            HttpCap::new(self.inner.client.clone(), plugin.policy.clone())
                .with_idempotency_key(invocation.idempotency_key.clone()),
            variables.clone(),
            plugin.config.clone(),
            &limits,
        );
        let mut store = self.new_store(state, limits.deadline_ms);
        let with_defaults;
        let invocation = if plugin.has_missing_defaults(invocation) {
            with_defaults = plugin.apply_defaults(invocation);
            &with_defaults
        } else {
            invocation
        };
        let run = tokio::time::timeout(Duration::from_millis(limits.deadline_ms), async {
            match &plugin.bindings {
                Bindings::V0_1_0(pre) => pre.execute(&mut store, invocation).await,
            }
        })
        .await;
        let state = store.data_mut().take_outputs();
        drop_off_path(store, permit);
        // stdout and stderr share the log's budget of lines and bytes.
        let mut log = state.log;
        let mut notes = Vec::new();
        let mut stderr = String::new();
        for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let (text, dropped) = pipe.contents();
            let level = if stream == "stderr" {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                log.write(level, format!("[{stream}] {line}"));
            }
            if dropped > 0 {
                notes.push(LogLine {
                    level: LogLevel::Warn,
                    message: format!(
                        "[{stream}] {dropped} more bytes not kept (limits.max_log_bytes = {})",
                        limits.max_log_bytes
                    ),
                });
            }
            if stream == "stderr" {
                stderr = text;
            }
        }
        let mut logs = log.into_lines();
        logs.extend(notes);
        for denial in &state.denials {
            logs.push(LogLine {
                level: LogLevel::Warn,
                message: format!("request refused: {denial}"),
            });
        }
        let mut detail = None;
        let result = match run {
            Err(_) => Err(ExecFailure::Deadline(limits.deadline_ms)),
            Ok(Err(trap)) => {
                let (failure, backtrace) = classify_trap(&trap, &limits, &stderr);
                detail = backtrace;
                Err(failure)
            }
            // A spent request budget is the cause, whatever the plugin made of the refusal
            // (`wasi:http` cannot trap from its hook, so the plugin saw an error code).
            Ok(Ok(_)) if state.over_limit => Err(ExecFailure::HttpLimit(
                RequestLimitExceeded {
                    max: limits.max_http_requests,
                }
                .to_string(),
            )),
            Ok(Ok(Err(ElementFailure::Failed(m)))) => {
                Err(ExecFailure::Element(cut_reason(m, limits.max_error_bytes)))
            }
            Ok(Ok(Err(ElementFailure::InvalidConfig(m)))) => Err(ExecFailure::InvalidConfig(
                cut_reason(m, limits.max_error_bytes),
            )),
            Ok(Ok(Ok(outcome))) => check_outcome(&plugin.manifest, outcome, &limits),
        };
        // Secrets never leave through logs or reasons.
        let redact = |s: &str| plugin.config.redact(s);
        if plugin.config.has_secrets() {
            for line in &mut logs {
                line.message = redact(&line.message);
            }
        }
        let result = result.map_err(|f| f.map_text(redact));
        let mut requests = state.requests;
        for r in &mut requests {
            r.url = redact(&r.url);
            r.error = r.error.as_deref().map(redact);
        }
        let (variables, changed) = match result {
            Ok(_) => (state.variables, state.changed),
            Err(_) => (variables, BTreeSet::new()),
        };
        Execution {
            result,
            variables,
            changed,
            logs,
            requests,
            detail,
            duration: started.elapsed(),
        }
    }
}

/// Drops an ended execution's store, and then gives back its permit (so no more than
/// `POOL_INSTANCES` stores exist at once), after the caller has its result if it can.
///
/// Dropping a store gives its instance's slots back to the pool, and the drop that fills a
/// decommit batch returns the whole batch's pages to the system: tens of µs, every few
/// executions, which made a plugin step's p99 three times its p50. Where a task spawned here
/// runs on this thread, the store goes to one: from a multi-threaded runtime's task it waits
/// in the worker's LIFO slot and runs as soon as the calling task waits (an engine step, for
/// its commit); on a current-thread runtime it runs when `block_on`'s future waits. So the
/// work stays on this core but leaves the step's path. Elsewhere (`block_on` of a
/// multi-threaded runtime, whose spawned tasks run on other threads) it is dropped here: a
/// drop on another core, while this one makes the next instance, was three times slower.
fn drop_off_path(store: Store<ExecState>, permit: impl Send + 'static) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let here = Handle::try_current().is_ok_and(|h| match h.runtime_flavor() {
        RuntimeFlavor::CurrentThread => true,
        RuntimeFlavor::MultiThread => tokio::task::try_id().is_some(),
        _ => false,
    });
    if here {
        tokio::spawn(async move {
            drop(store);
            drop(permit);
        });
    } else {
        drop(store);
        drop(permit);
    }
}

/// A WIT number as JSON: whole numbers become integers (`42`, not `42.0`); NaN and infinity,
/// which JSON cannot hold, become null.
pub fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn mib(m: u64) -> usize {
    usize::try_from(m.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

fn build_engine(config: &PluginHostConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 8)
        .max_memories_per_component(4)
        // Linear memories are decommitted, not kept resident: resetting kept pages memsets
        // them, which measured slower here. Tables are a few KiB (a Rust component has two),
        // and zeroing them in place beats a decommit and the page faults after it: ~2 µs
        // per execution (docs/BENCHMARKS.md).
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .max_memory_size(mib(config.max_memory_mib()))
        // One madvise for many freed slots instead of one each: ~15% faster per execution
        // here. A slot is not handed out again before its pages are decommitted.
        .decommit_batch_size(DECOMMIT_BATCH);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .max_wasm_stack(512 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&cfg)
}

/// Every capability, once. Adding a capability adds a line here.
fn compose_linker(linker: &mut Linker<ExecState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    since_v0_1_0::add_to_linker(linker)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::load::{check_manifest, resolve_declared_host, with_error_exit};
    use super::*;
    use manifest::ExitDecl;
    use serde_json::json;

    fn manifest() -> Manifest {
        Manifest {
            id: "m".into(),
            version: semver::Version::new(1, 0, 0),
            name: "M".into(),
            description: String::new(),
            config: Vec::new(),
            exits: ["ok", ERROR_EXIT]
                .map(|id| ExitDecl {
                    id: id.into(),
                    label: id.into(),
                })
                .to_vec(),
            hosts: vec!["setting:base".into(), "a.com".into()],
        }
    }

    fn outcome(exit: &str, data: Option<&str>) -> Outcome {
        Outcome {
            exit: exit.into(),
            data: data.map(Into::into),
        }
    }

    #[test]
    fn outcomes_are_checked() {
        let m = manifest();
        let limits = Limits {
            max_exit_bytes: 8,
            max_data_bytes: 16,
            ..Limits::default()
        };
        assert_eq!(
            check_outcome(&m, outcome("ok", None), &limits),
            Ok(("ok".into(), None))
        );
        assert_eq!(
            check_outcome(&m, outcome("ok", Some(r#"{"a":1}"#)), &limits),
            Ok(("ok".into(), Some(json!({"a": 1}))))
        );
        assert_eq!(
            check_outcome(&m, outcome("nope", None), &limits),
            Err(ExecFailure::UndeclaredExit("nope".into()))
        );
        assert!(matches!(
            check_outcome(&m, outcome("ok", Some("{not json")), &limits),
            Err(ExecFailure::MalformedOutcome(m)) if m.starts_with("data is not JSON")
        ));
        assert_eq!(
            check_outcome(&m, outcome("ok", Some("[1]")), &limits),
            Err(ExecFailure::MalformedOutcome(
                "data must be a JSON object".into()
            ))
        );
        assert!(matches!(
            check_outcome(&m, outcome("a-long-exit-id", None), &limits),
            Err(ExecFailure::Limit(e)) if e.setting == "max_exit_bytes" && e.seen == 14
        ));
        assert!(matches!(
            check_outcome(&m, outcome("ok", Some(r#"{"a": "0123456789"}"#)), &limits),
            Err(ExecFailure::Limit(e)) if e.setting == "max_data_bytes" && e.seen == 19
        ));
    }

    #[test]
    fn manifests_are_checked() {
        assert_eq!(check_manifest(&manifest()), Ok(()));
        let mut m = manifest();
        m.id = "Bad_Id".into();
        assert!(check_manifest(&m).unwrap_err().contains("not valid"));
        let mut m = manifest();
        m.exits.retain(|e| e.id != ERROR_EXIT);
        let m = with_error_exit(m);
        assert_eq!(m.exits.last().unwrap().id, ERROR_EXIT);
        assert_eq!(check_manifest(&m), Ok(()));
        assert_eq!(with_error_exit(m.clone()).exits.len(), m.exits.len());
        let mut m = manifest();
        m.exits[0].id = "x".repeat(1000);
        let err = check_manifest(&m).unwrap_err();
        assert!(
            err.contains("exit \"xxx") && err.contains("1000 bytes long; the most is 128"),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
        let mut m = manifest();
        m.hosts.push("http://x.com/".into());
        assert!(
            check_manifest(&m)
                .unwrap_err()
                .contains("not a host pattern")
        );
    }

    #[test]
    fn setting_hosts_resolve_to_the_url_host() {
        let settings =
            BTreeMap::from([("base".to_owned(), "https://api.crm.io:8443/v2".to_owned())]);
        let p = resolve_declared_host("setting:base", &settings).unwrap();
        assert!(p.matches("api.crm.io", 8443));
        assert!(!p.matches("api.crm.io", 443));
        assert_eq!(resolve_declared_host("setting:missing", &settings), None);
        assert_eq!(number_to_json(3.0), json!(3));
        assert_eq!(number_to_json(2.5), json!(2.5));
        assert_eq!(number_to_json(f64::NAN), Value::Null);
    }
}
