//! What an execution ends with: the outcome a plugin returned, checked against its manifest,
//! or the trap that ended it, in one line an operator can act on.

use super::*;

pub(super) fn check_outcome(
    manifest: &Manifest,
    outcome: Outcome,
) -> Result<(String, Option<Value>), ExecFailure> {
    if !manifest.exits.iter().any(|e| e.id == outcome.exit) {
        return Err(ExecFailure::UndeclaredExit(outcome.exit));
    }
    let data = match outcome.data {
        None => None,
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

pub(super) fn classify_trap(err: &wasmtime::Error, deadline_ms: u64) -> ExecFailure {
    if let Some(e) = err.downcast_ref::<MemoryLimitExceeded>() {
        return ExecFailure::Memory(e.to_string());
    }
    if let Some(e) = err.downcast_ref::<RequestLimitExceeded>() {
        return ExecFailure::HttpLimit(e.to_string());
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => ExecFailure::Deadline(deadline_ms),
        Some(wasmtime::Trap::StackOverflow) => ExecFailure::StackOverflow,
        _ => ExecFailure::Trap(trap_reason(err)),
    }
}

/// A one-line reason for a trap: the trap message and the innermost guest frame.
pub(super) fn trap_reason(err: &wasmtime::Error) -> String {
    let mut reason = match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "panicked (wasm `unreachable` reached)".to_owned()
        }
        Some(trap) => trap.to_string(),
        None => err.to_string(),
    };
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>()
        && let Some(name) = bt.frames().iter().find_map(|f| f.func_name())
    {
        reason.push_str(&format!(" in {name}"));
    }
    reason
}
