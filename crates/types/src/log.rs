//! Lines of a journey log, written by elements, plugins and the engine.

use serde::{Deserialize, Serialize};

/// Severity of a journey log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// One line of a journey log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Text.
    pub message: String,
}

impl LogLine {
    /// A line at `level`.
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        LogLine {
            level,
            message: message.into(),
        }
    }
}
