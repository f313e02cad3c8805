//! flowhost's integration tests, one module per area, in one binary (see Cargo.toml).

mod call_api;
mod engine;
mod journeys;
mod nodes;
mod other_languages;
mod plugin_output;
mod recovery;
mod retention;
mod sample_plugins;
mod samples;
mod sandbox;
mod server;
