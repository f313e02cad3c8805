//! Write flowhost custom elements in Rust.
//!
//! A custom element is a WebAssembly component that a flow runs as one of its steps. It
//! describes itself (id, version, configuration fields, exits, outbound hosts) and, for each
//! participant that reaches it, picks one of its exits. The host gives it outbound HTTP, the
//! participant's flow variables, a journey log, and the operator's settings and secrets.
//!
//! ```no_run
//! use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element};
//!
//! struct Greeter;
//!
//! impl Element for Greeter {
//!     fn manifest() -> Manifest {
//!         Manifest::new("greeter", "0.1.0", "Greeter")
//!             .config(Field::text("greeting").default_value("Hello"))
//!             .exit("greeted", "Greeted")
//!     }
//!
//!     fn execute(ctx: &Context) -> Result<Exit, Error> {
//!         let greeting: String = ctx.config_value("greeting")?;
//!         let name = ctx.person().attribute_str("firstName").unwrap_or("there");
//!         flowhost_sdk::variables::set("greeting", format!("{greeting}, {name}!"));
//!         Ok(Exit::to("greeted"))
//!     }
//! }
//!
//! export_element!(Greeter);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` and drop the `.wasm` file into
//! the host's plugins folder.
#![deny(missing_docs)]

mod context;
mod error;
pub mod http;
pub mod log;
mod manifest;
pub mod template;
pub mod variables;

pub use context::{Context, Person};
pub use error::Error;
pub use manifest::{Exit, Field, FieldKind, Manifest};
pub use serde_json::{Value as Json, json};

/// A JSON object, as configuration fields of kind `json` often hold.
pub type JsonObject = serde_json::Map<String, Json>;

/// The WIT version this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// The id of the exit every element has, where the host routes failures.
pub const ERROR_EXIT: &str = "error";

/// Raw bindings generated from the WIT contract; use the SDK's types instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_impl",
        default_bindings_module: "::flowhost_sdk::bindings",
    });
}

use bindings::exports::flowhost::element::element as wit_element;
use bindings::flowhost::element::types as wit;

/// A custom element. Implement it on a unit struct and register it with [`export_element!`].
pub trait Element {
    /// Describes the element: called once when the host loads the plugin.
    fn manifest() -> Manifest;

    /// Runs the element for one participant and returns the exit to take.
    ///
    /// An `Err` sends the participant down the `error` exit with the error as the reason.
    fn execute(ctx: &Context) -> Result<Exit, Error>;
}

/// Operator settings and secrets for this plugin, set once by the operator in `flowhost.toml`.
pub mod config {
    use crate::Error;
    use crate::bindings::flowhost::element::config as raw;

    /// A non-secret operator setting.
    pub fn setting(name: &str) -> Option<String> {
        raw::setting(name)
    }

    /// A required operator setting; its absence is a failure that names the setting.
    pub fn require_setting(name: &str) -> Result<String, Error> {
        raw::setting(name).ok_or_else(|| {
            Error::config(format!(
                "operator setting `{name}` is not set; add it under [plugins.<id>.settings] in flowhost.toml"
            ))
        })
    }

    /// An operator secret. Its value never appears in journeys.
    pub fn secret(name: &str) -> Option<String> {
        raw::secret(name)
    }

    /// A required operator secret; its absence is a failure that names the secret.
    pub fn require_secret(name: &str) -> Result<String, Error> {
        raw::secret(name).ok_or_else(|| {
            Error::config(format!(
                "operator secret `{name}` is not set; add it under [plugins.<id>.secrets] in flowhost.toml"
            ))
        })
    }
}

#[doc(hidden)]
pub fn __describe<E: Element>() -> wit::Manifest {
    E::manifest().into_wit()
}

#[doc(hidden)]
pub fn __execute<E: Element>(
    invocation: wit::Invocation,
) -> Result<wit::Outcome, wit::ElementError> {
    let ctx = Context::from_wit(invocation);
    match E::execute(&ctx) {
        Ok(exit) => Ok(exit.into_wit()),
        Err(err) => Err(err.into_wit()),
    }
}

#[doc(hidden)]
pub use wit_element::Guest as __Guest;

/// Exports a type implementing [`Element`] as the component's element.
#[macro_export]
macro_rules! export_element {
    ($element:ty) => {
        #[doc(hidden)]
        struct __FlowhostElement;

        impl $crate::__Guest for __FlowhostElement {
            fn describe() -> $crate::bindings::flowhost::element::types::Manifest {
                $crate::__describe::<$element>()
            }

            fn execute(
                invocation: $crate::bindings::flowhost::element::types::Invocation,
            ) -> ::core::result::Result<
                $crate::bindings::flowhost::element::types::Outcome,
                $crate::bindings::flowhost::element::types::ElementError,
            > {
                $crate::__execute::<$element>(invocation)
            }
        }

        $crate::__export_plugin_impl!(__FlowhostElement with_types_in $crate::bindings);
    };
}

/// Converts between WIT values and JSON.
pub(crate) fn value_to_json(value: wit::Value) -> serde_json::Value {
    match value {
        wit::Value::Null => serde_json::Value::Null,
        wit::Value::Boolean(b) => serde_json::Value::Bool(b),
        // Whole numbers come back as integers, as they went in.
        wit::Value::Number(n) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            serde_json::Value::from(n as i64)
        }
        wit::Value::Number(n) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        wit::Value::Text(s) => serde_json::Value::String(s),
        wit::Value::Json(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)),
    }
}

pub(crate) fn json_to_value(value: serde_json::Value) -> wit::Value {
    match value {
        serde_json::Value::Null => wit::Value::Null,
        serde_json::Value::Bool(b) => wit::Value::Boolean(b),
        serde_json::Value::Number(n) => wit::Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => wit::Value::Text(s),
        other => wit::Value::Json(other.to_string()),
    }
}
