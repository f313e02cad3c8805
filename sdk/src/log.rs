//! Messages recorded in the participant's journey.

use crate::bindings::flowhost::element::log::{Level, write as log};

/// Records a debug message.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Records an informational message.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Records a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Records an error message (the element still chooses its exit).
pub fn error(message: &str) {
    log(Level::Error, message);
}
