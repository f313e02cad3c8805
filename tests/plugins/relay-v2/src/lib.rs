//! Test plugin: version 2.0.0 of `relay`, for hot reload. Built by tests/build.rs.
use flowhost_sdk::http::Request;
use flowhost_sdk::{Context, Element, Error, Exit, Field, Manifest, export_element, variables};

const VERSION: &str = "2.0.0";

include!("../../relay-v1/src/relay.rs");
