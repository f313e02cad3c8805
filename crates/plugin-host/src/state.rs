//! Per-execution store state: one value of [`ExecState`] lives in each `Store`. When the
//! execution ends, whatever way it ends, what the result needs is taken out of it
//! ([`ExecState::take_outputs`]) and the rest is dropped with the store.

use super::capabilities::{ConfigCap, HttpCap, LogCap, RequestRecord, VariablesCap};
use super::config::Limits;
use super::stdio::Captured;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of a `Store` running one plugin execution.
pub struct ExecState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http_ctx: WasiHttpCtx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) http: HttpCap,
    pub(crate) variables: VariablesCap,
    pub(crate) log: LogCap,
    pub(crate) config: ConfigCap,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
}

impl ExecState {
    /// The state of one execution that starts with `variables`, under `limits`.
    pub(crate) fn new(
        http: HttpCap,
        variables: BTreeMap<String, Value>,
        config: ConfigCap,
        limits: &Limits,
    ) -> Self {
        let log_bytes = usize::try_from(limits.max_log_bytes).unwrap_or(usize::MAX);
        let stdout = Captured::new(log_bytes);
        let stderr = Captured::new(log_bytes);
        // No preopens, no environment, no arguments, no sockets: the builder's defaults plus
        // closing TCP/UDP outright.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        ExecState {
            wasi,
            table: ResourceTable::new(),
            http_ctx: WasiHttpCtx::new(),
            limiter: MemoryLimiter {
                max_bytes: super::mib(limits.memory_mib),
                hit: false,
            },
            http,
            variables: VariablesCap::new(variables, limits.into()),
            log: LogCap::new(log_bytes),
            config,
            stdout,
            stderr,
        }
    }
}

/// What an ended execution leaves for its result: taken out of the store's state, so that
/// the store can be dropped apart from the result (see `PluginHost::execute`).
pub(crate) struct Outputs {
    pub(crate) log: LogCap,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
    /// The request budget was spent (see `HttpCap`).
    pub(crate) over_limit: bool,
    pub(crate) denials: Vec<String>,
    pub(crate) requests: Vec<RequestRecord>,
    /// The variables after the execution.
    pub(crate) variables: BTreeMap<String, Value>,
    /// The names of those it changed.
    pub(crate) changed: BTreeSet<String>,
}

impl ExecState {
    /// Takes out what the result needs, leaving empty values behind.
    pub(crate) fn take_outputs(&mut self) -> Outputs {
        let (variables, changed) = self.variables.take_parts();
        Outputs {
            log: std::mem::take(&mut self.log),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            over_limit: self.http.over_limit,
            denials: std::mem::take(&mut self.http.denials),
            requests: std::mem::take(&mut self.http.requests),
            variables,
            changed,
        }
    }
}

impl WasiView for ExecState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ExecState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

/// Caps linear memory per execution. Growth past the cap traps with a message that names it.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    pub(crate) hit: bool,
}

/// The trap raised when a plugin grows memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit of {mib} MiB reached (wanted {wanted_mib} MiB); the operator can raise limits.memory_mib for this plugin"
)]
pub struct MemoryLimitExceeded {
    /// The cap.
    pub mib: usize,
    /// What the plugin asked for.
    pub wanted_mib: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                mib: self.max_bytes >> 20,
                wanted_mib: desired.div_ceil(1 << 20),
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
