//! Host capabilities offered to plugins, one module each. A capability holds the
//! per-execution state behind one WIT import; the versioned binding modules
//! (`since_v0_1_0`, …) translate WIT types and call into these.

mod config;
mod http;
mod log;
mod variables;

pub use config::ConfigCap;
pub use http::{HttpCap, IDEMPOTENCY_HEADER, RequestLimitExceeded, RequestRecord};
pub use log::{LogCap, LogLevel, LogLine};
pub use variables::{VariableLimits, VariablesCap};
