//! Errors that send the participant down the `error` exit.

use crate::bindings::flowhost::element::types as wit;
use crate::http::HttpError;
use std::fmt;

/// Why an element failed. Returning it from [`crate::Element::execute`] takes the `error`
/// exit and records the message in the participant's journey.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    kind: Kind,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Config,
    Failed,
}

impl Error {
    /// The element's configuration cannot be used.
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Config,
            message: message.into(),
        }
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Failed,
            message: message.into(),
        }
    }

    /// The message recorded in the journey.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_wit(self) -> wit::ElementError {
        match self.kind {
            Kind::Config => wit::ElementError::InvalidConfig(self.message),
            Kind::Failed => wit::ElementError::Failed(self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<HttpError> for Error {
    fn from(err: HttpError) -> Self {
        Error::failed(err.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::failed(format!("invalid JSON: {err}"))
    }
}
