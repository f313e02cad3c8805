//! Outbound HTTP through the host, which applies the operator's allow-list and limits.
//!
//! ```no_run
//! # fn main() -> Result<(), flowhost_sdk::Error> {
//! use flowhost_sdk::http::Request;
//! let response = Request::post("https://api.example.com/v1/things")
//!     .bearer("token")
//!     .json(&flowhost_sdk::json!({"name": "x"}))
//!     .send()?;
//! if response.is_success() {
//!     let body: flowhost_sdk::Json = response.json()?;
//! }
//! # Ok(()) }
//! ```

use crate::bindings::flowhost::element::http as raw;
use crate::{Error, Json};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpError {
    /// The operator has not granted this host to the plugin.
    Denied(String),
    /// The URL, method or a header is not valid.
    InvalidRequest(String),
    /// No response within the timeout.
    Timeout,
    /// Connection, DNS or TLS failure.
    Connection(String),
    /// The response body was larger than the host allows (bytes).
    ResponseTooLarge(u64),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request denied: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Timeout => f.write_str("request timed out"),
            HttpError::Connection(m) => write!(f, "connection failed: {m}"),
            HttpError::ResponseTooLarge(n) => write!(f, "response body over {n} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<raw::HttpError> for HttpError {
    fn from(e: raw::HttpError) -> Self {
        match e {
            raw::HttpError::Denied(m) => HttpError::Denied(m),
            raw::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
            raw::HttpError::Timeout => HttpError::Timeout,
            raw::HttpError::Connection(m) => HttpError::Connection(m),
            raw::HttpError::ResponseTooLarge(n) => HttpError::ResponseTooLarge(n),
        }
    }
}

/// A request being built.
#[derive(Clone, Debug)]
pub struct Request {
    inner: raw::Request,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            inner: raw::Request {
                method: method.to_owned(),
                url: url.to_owned(),
                headers: Vec::new(),
                body: None,
                timeout_ms: None,
            },
        }
    }

    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A POST request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// A PUT request.
    pub fn put(url: &str) -> Self {
        Self::new("PUT", url)
    }

    /// A PATCH request.
    pub fn patch(url: &str) -> Self {
        Self::new("PATCH", url)
    }

    /// A DELETE request.
    pub fn delete(url: &str) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.header("content-type", "application/json").body(bytes)
    }

    /// A timeout for this request, in milliseconds.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Sends the request and waits for the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        raw::send(&self.inner)
            .map(|r| Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(HttpError::from)
    }
}

/// A buffered response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::failed(format!(
                "response (status {}) is not the expected JSON: {e}",
                self.status
            ))
        })
    }

    /// The body as a JSON value, or `Null` when it is not JSON.
    pub fn json_value(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }
}
