//! What an execution ends with: the outcome a plugin returned, checked against its manifest
//! and the operator's limits, or the trap that ended it, in one line an operator can act on.
//! The wasm backtrace of a trap is kept apart, as a technical detail for the journey.

use super::*;
use crate::bounds::{LimitExceeded, PREVIEW_BYTES, cut_reason, preview};

/// The exit a plugin chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Exit id.
    pub exit: String,
    /// Outcome data as JSON text.
    pub data: Option<String>,
}

/// An error the plugin returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementFailure {
    /// Unusable configuration.
    InvalidConfig(String),
    /// Anything else.
    Failed(String),
}

/// Why an execution ended on the error exit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecFailure {
    /// The plugin returned an error.
    #[error("plugin error: {0}")]
    Element(String),
    /// The plugin rejected its configuration.
    #[error("plugin rejected its configuration: {0}")]
    InvalidConfig(String),
    /// The wall-clock deadline passed.
    #[error(
        "deadline of {0} ms exceeded; the operator can raise limits.deadline_ms for this plugin"
    )]
    Deadline(u64),
    /// Linear memory grew past the cap.
    #[error("{0}")]
    Memory(String),
    /// Too many HTTP requests.
    #[error("{0}")]
    HttpLimit(String),
    /// The wasm stack overflowed (deep recursion).
    #[error(
        "stack overflow: the plugin's calls nested deeper than the engine's stack allows (deep or unbounded recursion)"
    )]
    StackOverflow,
    /// An out-of-bounds access deep in a recursion: the stack a Rust plugin keeps in its own
    /// linear memory ran out. Holds the recursing function.
    #[error(
        "most likely a stack overflow in the plugin's own stack: memory was accessed out of bounds deep in a recursion of {0}; look for deep or unbounded recursion or large values on the stack"
    )]
    PluginStackOverflow(String),
    /// The guest panicked with a message (printed to stderr, as Rust does).
    #[error("plugin panicked at {location}: {message}")]
    Panic {
        /// `src/lib.rs:18:9`.
        location: String,
        /// What it said.
        message: String,
    },
    /// The plugin called a host function against its contract.
    #[error("plugin misused a host call: {0}")]
    HostCall(String),
    /// The plugin handed back more than a limit allows.
    #[error("{0}")]
    Limit(LimitExceeded),
    /// Any other trap: `unreachable` without a panic message, an out-of-bounds access, …
    #[error("plugin crashed: {0}")]
    Trap(String),
    /// The exit is not one the manifest declares.
    #[error("returned exit {0:?}, which its manifest does not declare")]
    UndeclaredExit(String),
    /// The outcome could not be used.
    #[error("malformed outcome: {0}")]
    MalformedOutcome(String),
    /// The host could not run it.
    #[error("could not run: {0}")]
    Host(String),
}

/// What one execution produced.
#[derive(Debug)]
pub struct Execution {
    /// The exit and data, or why it failed.
    pub result: Result<(String, Option<Value>), ExecFailure>,
    /// Variables after the execution (unchanged on failure).
    pub variables: BTreeMap<String, Value>,
    /// Names of variables the execution changed (empty on failure).
    pub changed: BTreeSet<String>,
    /// Journey log lines: plugin log, stdout/stderr, refused requests.
    pub logs: Vec<LogLine>,
    /// The requests sent through `http.send`, in order (secrets redacted).
    pub requests: Vec<capabilities::RequestRecord>,
    /// A technical line about a failure, for the journey after its reason: the wasm
    /// backtrace of a trap.
    pub detail: Option<String>,
    /// Wall-clock time.
    pub duration: Duration,
}

/// A plugin called a host function in a way its contract does not allow.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostCallMisuse(pub(crate) String);

pub(super) fn check_outcome(
    manifest: &Manifest,
    outcome: Outcome,
    limits: &Limits,
) -> Result<(String, Option<Value>), ExecFailure> {
    if outcome.exit.len() as u64 > limits.max_exit_bytes {
        return Err(ExecFailure::Limit(
            LimitExceeded::bytes(
                "exit id",
                outcome.exit.len() as u64,
                "max_exit_bytes",
                limits.max_exit_bytes,
            )
            .quoting(&outcome.exit),
        ));
    }
    if !manifest.exits.iter().any(|e| e.id == outcome.exit) {
        return Err(ExecFailure::UndeclaredExit(outcome.exit));
    }
    let data = match outcome.data {
        None => None,
        Some(text) if text.len() as u64 > limits.max_data_bytes => {
            return Err(ExecFailure::Limit(LimitExceeded::bytes(
                "outcome data",
                text.len() as u64,
                "max_data_bytes",
                limits.max_data_bytes,
            )));
        }
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Some(v),
            Ok(_) => {
                return Err(ExecFailure::MalformedOutcome(
                    "data must be a JSON object".into(),
                ));
            }
            Err(e) => {
                return Err(ExecFailure::MalformedOutcome(format!(
                    "data is not JSON ({e})"
                )));
            }
        },
    };
    Ok((outcome.exit, data))
}

/// Why a trap ended the execution, in words, and its wasm backtrace as one technical line.
/// `stderr` is what the plugin printed there (a Rust panic prints its message).
pub(super) fn classify_trap(
    err: &wasmtime::Error,
    limits: &Limits,
    stderr: &str,
) -> (ExecFailure, Option<String>) {
    let backtrace = err.downcast_ref::<wasmtime::WasmBacktrace>();
    let failure = if let Some(e) = err.downcast_ref::<LimitExceeded>() {
        ExecFailure::Limit(e.clone())
    } else if let Some(e) = err.downcast_ref::<MemoryLimitExceeded>() {
        ExecFailure::Memory(e.to_string())
    } else if let Some(e) = err.downcast_ref::<RequestLimitExceeded>() {
        ExecFailure::HttpLimit(e.to_string())
    } else if let Some(e) = err.downcast_ref::<HostCallMisuse>() {
        ExecFailure::HostCall(preview(&e.0, limits.max_error_bytes as usize).into_owned())
    } else {
        match err.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => ExecFailure::Deadline(limits.deadline_ms),
            Some(wasmtime::Trap::StackOverflow) => ExecFailure::StackOverflow,
            Some(wasmtime::Trap::MemoryOutOfBounds) => match recursion(backtrace) {
                Some(function) => ExecFailure::PluginStackOverflow(function),
                None => ExecFailure::Trap(trap_reason(err)),
            },
            Some(wasmtime::Trap::UnreachableCodeReached) => match panic_message(stderr) {
                Some((location, message)) => ExecFailure::Panic {
                    location: preview(location, PREVIEW_BYTES).into_owned(),
                    message: cut_reason(message, limits.max_error_bytes),
                },
                None => ExecFailure::Trap(trap_reason(err)),
            },
            _ => ExecFailure::Trap(trap_reason(err)),
        }
    };
    (failure, backtrace.map(describe))
}

/// Frames of a backtrace shown in the journey (wasmtime captures up to 20).
const SHOWN_FRAMES: usize = 20;

/// The usual shape of a Rust plugin overflowing the stack it keeps in its own linear memory:
/// the access that leaves memory happens deep in a recursion, so most captured frames are
/// one function. Returns that function.
fn recursion(backtrace: Option<&wasmtime::WasmBacktrace>) -> Option<String> {
    let frames = backtrace?.frames();
    if frames.len() < 16 {
        return None;
    }
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for f in frames {
        *counts.entry(f.func_index()).or_default() += 1;
    }
    let (&index, &count) = counts.iter().max_by_key(|&(_, c)| *c)?;
    if count * 4 < frames.len() * 3 {
        return None;
    }
    let frame = frames.iter().find(|f| f.func_index() == index)?;
    Some(function_name(frame))
}

fn function_name(frame: &wasmtime::FrameInfo) -> String {
    match frame.func_name() {
        Some(name) => preview(name, PREVIEW_BYTES).into_owned(),
        None => format!("wasm function {}", frame.func_index()),
    }
}

/// `wasm backtrace: #0 f @ 0x1a2b, #1 g, …`, at most [`SHOWN_FRAMES`] frames.
fn describe(backtrace: &wasmtime::WasmBacktrace) -> String {
    let frames: Vec<String> = backtrace
        .frames()
        .iter()
        .take(SHOWN_FRAMES)
        .enumerate()
        .map(|(i, f)| match f.module_offset() {
            Some(at) => format!("#{i} {} @ {at:#x}", function_name(f)),
            None => format!("#{i} {}", function_name(f)),
        })
        .collect();
    format!("wasm backtrace: {}", frames.join(", "))
}

/// The location and message of the last Rust panic in `stderr`:
/// `thread '…' panicked at src/lib.rs:18:9:\nthe message\nnote: run with …`.
fn panic_message(stderr: &str) -> Option<(&str, String)> {
    let (_, after) = stderr.rsplit_once(" panicked at ")?;
    let (location, rest) = after.split_once(":\n")?;
    let message: Vec<&str> = rest
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let message = message.join("\n").trim().to_owned();
    (!message.is_empty()).then_some((location, message))
}

/// A one-line reason for a trap: the trap message and the innermost guest frame.
pub(super) fn trap_reason(err: &wasmtime::Error) -> String {
    let mut reason = match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "wasm `unreachable` reached, which is how a Rust panic ends (no panic message was printed)".to_owned()
        }
        Some(trap) => trap.to_string(),
        // Not a trap: the host's error, without the backtrace wasmtime adds as context.
        None => err.root_cause().to_string(),
    };
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>()
        && let Some(frame) = bt.frames().first()
    {
        reason.push_str(&format!(" in {}", function_name(frame)));
    }
    reason
}

impl ExecFailure {
    /// The failure with `f` applied to each text that came from the plugin (to redact
    /// secrets from it).
    pub(crate) fn map_text(self, f: impl Fn(&str) -> String) -> ExecFailure {
        match self {
            ExecFailure::Element(m) => ExecFailure::Element(f(&m)),
            ExecFailure::InvalidConfig(m) => ExecFailure::InvalidConfig(f(&m)),
            ExecFailure::Trap(m) => ExecFailure::Trap(f(&m)),
            ExecFailure::HostCall(m) => ExecFailure::HostCall(f(&m)),
            ExecFailure::Panic { location, message } => ExecFailure::Panic {
                location: f(&location),
                message: f(&message),
            },
            ExecFailure::UndeclaredExit(m) => ExecFailure::UndeclaredExit(f(&m)),
            ExecFailure::Limit(e) => ExecFailure::Limit(e.map_preview(f)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_found_in_stderr() {
        let stderr = "starting\nthread '<unnamed>' panicked at src/lib.rs:18:9:\nthe order API answered nonsense\nsecond line\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr),
            Some((
                "src/lib.rs:18:9",
                "the order API answered nonsense\nsecond line".to_owned()
            ))
        );
        assert_eq!(panic_message("no panic here\n"), None);
    }
}
