//! Loading plugins: reading the plugins folder, telling components from other files,
//! compiling (or taking from the AOT cache), recognising the WIT version, and checking the
//! manifest a plugin describes itself with. A bad file is one [`LoadError`]; the rest load.

use super::*;
use sha2::{Digest, Sha256};

/// Why a file was not loaded as a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{path}: not a WebAssembly file; remove it from the plugins folder")]
    NotWasm {
        /// File.
        path: PathBuf,
    },
    /// A core module rather than a component.
    #[error(
        "{path}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// File.
        path: PathBuf,
    },
    /// The component does not compile (truncated, corrupt, unsupported features).
    #[error("{path}: invalid component: {reason}; rebuild the plugin")]
    Invalid {
        /// File.
        path: PathBuf,
        /// Compiler message.
        reason: String,
    },
    /// Not a flowhost element, or one for a WIT version this host does not serve.
    #[error("{path}: {reason}")]
    Contract {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The same id and version already came from another file.
    #[error("{path}: plugin {key} is also in {other}; remove one of the two files")]
    Duplicate {
        /// File.
        path: PathBuf,
        /// `id@version`.
        key: String,
        /// The file that loaded first.
        other: PathBuf,
    },
}

impl PluginHost {
    /// Loads every `*.wasm` in the configured plugins folder (not recursive), in name order.
    /// A missing folder means no plugins.
    pub async fn load_dir(&self) -> (PluginRegistry, Vec<LoadError>) {
        self.reload_dir(&PluginRegistry::default()).await
    }

    /// Loads the plugins folder again. A file unchanged since `previous` (the same path and
    /// the same bytes) keeps its loaded plugin, without compiling or describing it again.
    pub async fn reload_dir(&self, previous: &PluginRegistry) -> (PluginRegistry, Vec<LoadError>) {
        let mut registry = PluginRegistry::default();
        let mut errors = Vec::new();
        for path in self.plugin_files() {
            let loaded = match std::fs::read(&path) {
                Err(source) => Err(LoadError::Read {
                    path: path.clone(),
                    source,
                }),
                Ok(bytes) => {
                    let sha256 = hex::encode(Sha256::digest(&bytes));
                    match previous
                        .iter()
                        .find(|p| p.path == path && p.sha256 == sha256)
                    {
                        Some(same) => Ok(same.clone()),
                        None => self.load_bytes(&path, &bytes).await.map(Arc::new),
                    }
                }
            };
            match loaded.and_then(|plugin| registry.insert_loaded(plugin)) {
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        metrics::counter!("flowhost_plugin_load_failures_total").increment(errors.len() as u64);
        (registry, errors)
    }

    /// The `*.wasm` files of the plugins folder, in name order.
    fn plugin_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.inner.config.plugins_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// What the plugins folder holds now: each `*.wasm` file's name, size and modification
    /// time. A change means the folder should be loaded again.
    pub fn folder_fingerprint(&self) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
        self.plugin_files()
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path).ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                let modified = meta.and_then(|m| m.modified().ok());
                (path, size, modified)
            })
            .collect()
    }

    /// The plugins folder.
    pub fn plugins_dir(&self) -> &Path {
        &self.inner.config.plugins_dir
    }

    /// Loads one file.
    pub async fn load_file(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, &bytes).await
    }

    /// Loads a plugin from the bytes of the file at `path`.
    async fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let path_buf = path.to_owned();
        classify(bytes, path)?;
        let engine = &self.inner.engine;
        let (component, cache) = self
            .inner
            .cache
            .load_or_compile(engine, bytes)
            .map_err(|e| LoadError::Invalid {
                path: path_buf.clone(),
                reason: format!("{e:#}"),
            })?;
        let contract = |reason: String| LoadError::Contract {
            path: path_buf.clone(),
            reason,
        };
        let wit_version = element_version(engine, &component).map_err(contract)?;
        let pre =
            self.inner.linker.instantiate_pre(&component).map_err(|e| {
                contract(format!("imports something this host does not provide: {e}"))
            })?;
        let bindings = match wit_version {
            since_v0_1_0::VERSION => {
                Bindings::V0_1_0(since_v0_1_0::Pre::new(pre).map_err(|e| contract(e.to_string()))?)
            }
            other => return Err(contract(format!("WIT version {other} is not served"))),
        };
        // `describe` runs under default limits and no network: it must only describe.
        let defaults = self.inner.config.limits;
        let no_net = Arc::new(OutboundPolicy {
            subject: format!("{} (describe)", path.display()),
            declared: Some(Vec::new()),
            granted: Vec::new(),
            max_requests: 0,
            max_response_bytes: 0,
        });
        let state = ExecState::new(
            HttpCap::new(self.inner.client.clone(), no_net),
            BTreeMap::new(),
            ConfigCap::default(),
            &defaults,
        );
        let mut store = self.new_store(state, defaults.deadline_ms);
        let described = tokio::time::timeout(Duration::from_millis(defaults.deadline_ms), async {
            match &bindings {
                Bindings::V0_1_0(pre) => pre.describe(&mut store).await,
            }
        })
        .await
        .map_err(|_| {
            contract(format!(
                "describe() did not return within {} ms",
                defaults.deadline_ms
            ))
        })?
        .map_err(|e| contract(format!("describe() failed: {}", trap_reason(&e))))?
        .map_err(|e| contract(format!("describe() returned an unusable manifest: {e}")))?;
        let described = with_error_exit(described);
        check_manifest(&described).map_err(contract)?;

        let id = described.id.clone();
        let grant = self
            .inner
            .config
            .plugins
            .get(&id)
            .cloned()
            .unwrap_or_default();
        let limits = self.inner.config.limits_for(&id);
        let subject = format!("plugin {id}@{}", described.version);
        let policy = Arc::new(OutboundPolicy {
            declared: Some(
                described
                    .hosts
                    .iter()
                    .filter_map(|h| resolve_declared_host(h, &grant.settings))
                    .collect(),
            ),
            granted: grant
                .allow_hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h))
                .collect(),
            max_requests: limits.max_http_requests,
            max_response_bytes: limits.max_response_bytes,
            subject,
        });
        let secrets = grant.secret_values();
        let missing_secrets = described
            .config
            .iter()
            .filter(|f| f.secret && f.required && !secrets.contains_key(&f.name))
            .map(|f| f.name.clone())
            .collect();
        let secret_env = grant
            .secrets
            .iter()
            .filter_map(|(name, source)| Some((name.clone(), source.env()?.to_owned())))
            .collect();
        Ok(LoadedPlugin {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            path: path_buf,
            manifest: described,
            wit_version,
            cache,
            limits,
            policy,
            missing_secrets,
            secret_env,
            config: ConfigCap::new(Arc::new(grant.settings), Arc::new(secrets)),
            bindings,
        })
    }
}

fn classify(bytes: &[u8], path: &Path) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
        });
    }
    // Version 1, layer 0 is a core module; components use layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The WIT version of the `element` interface the component exports.
fn element_version(engine: &Engine, component: &Component) -> Result<&'static str, String> {
    let ty = component.component_type();
    let exported: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let Some(name) = exported.iter().find(|n| n.starts_with(ELEMENT_EXPORT)) else {
        return Err(format!(
            "does not export {ELEMENT_EXPORT}{}, so it is not a flowhost element (it exports: {}); build it with flowhost-sdk",
            SUPPORTED_WIT_VERSIONS.last().unwrap_or(&""),
            if exported.is_empty() {
                "nothing".to_owned()
            } else {
                exported.join(", ")
            }
        ));
    };
    let version = &name[ELEMENT_EXPORT.len()..];
    SUPPORTED_WIT_VERSIONS
        .iter()
        .find(|v| **v == version)
        .copied()
        .ok_or_else(|| {
            format!(
                "built against WIT flowhost:element@{version}, which this host does not serve (it serves {}); rebuild the plugin with a matching flowhost-sdk or upgrade flowhost",
                SUPPORTED_WIT_VERSIONS.join(", ")
            )
        })
}

/// Every element can fail, so every plugin has the `error` exit: the host adds it when the
/// manifest leaves it out (as the Rust SDK does), whatever language the plugin is written in.
pub(super) fn with_error_exit(mut m: Manifest) -> Manifest {
    if !m.exits.iter().any(|e| e.id == ERROR_EXIT) {
        m.exits.push(manifest::ExitDecl {
            id: ERROR_EXIT.to_owned(),
            label: "Error".to_owned(),
        });
    }
    m
}

/// Longest id, exit id, config field name or host a manifest may declare.
const MAX_NAME_BYTES: usize = 128;

pub(super) fn check_manifest(m: &Manifest) -> Result<(), String> {
    // Names are quoted in messages: only a bounded prefix of what the plugin wrote.
    let q = |s: &str| {
        format!(
            "{:?}",
            crate::bounds::preview(s, crate::bounds::PREVIEW_BYTES)
        )
    };
    if !valid_id(&m.id) || m.id.len() > MAX_NAME_BYTES {
        return Err(format!(
            "manifest id {} is not valid: use up to {MAX_NAME_BYTES} lowercase letters, digits and '-', starting with a letter",
            q(&m.id)
        ));
    }
    let names = m
        .exits
        .iter()
        .map(|e| ("exit", &e.id))
        .chain(m.config.iter().map(|f| ("config field", &f.name)))
        .chain(m.hosts.iter().map(|h| ("host", h)));
    for (what, name) in names {
        if name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "manifest of {}: {what} {} is {} bytes long; the most is {MAX_NAME_BYTES}",
                m.id,
                q(name),
                name.len()
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for exit in &m.exits {
        if !seen.insert(&exit.id) {
            return Err(format!(
                "manifest of {} declares exit {:?} twice",
                m.id, exit.id
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for field in &m.config {
        if !seen.insert(&field.name) {
            return Err(format!(
                "manifest of {} declares config field {:?} twice",
                m.id, field.name
            ));
        }
        if let Some(default) = &field.default
            && !field.kind.accepts(default)
        {
            return Err(format!(
                "manifest of {}: default of config field {:?} is not {}",
                m.id,
                field.name,
                field.kind.name()
            ));
        }
    }
    for host in &m.hosts {
        if host.strip_prefix("setting:").is_none() && HostPattern::parse(host).is_none() {
            return Err(format!(
                "manifest of {}: host {host:?} is not a host pattern",
                m.id
            ));
        }
    }
    Ok(())
}

/// `setting:<name>` becomes the host of the URL in that operator setting.
pub(super) fn resolve_declared_host(
    entry: &str,
    settings: &BTreeMap<String, String>,
) -> Option<HostPattern> {
    match entry.strip_prefix("setting:") {
        Some(name) => {
            let uri: http::Uri = settings.get(name)?.parse().ok()?;
            let (host, port) = flowhost_outbound::url_host_port(&uri)?;
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            HostPattern::parse(&format!("{host}:{port}"))
        }
        None => HostPattern::parse(entry),
    }
}
