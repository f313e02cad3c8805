//! One module per command: its arguments (a clap `Args` struct or `Subcommand` enum) and its
//! `run`, which returns the process's exit code.

pub mod analytics;
pub mod answers;
pub mod chatbots;
pub mod conversations;
pub mod demo;
pub mod deploy;
pub mod flows;
pub mod inbound;
pub mod journey;
pub mod messages;
pub mod people;
pub mod plugins;
pub mod prune;
pub mod queue;
pub mod resume;
pub mod run;
pub mod serve;
pub mod validate;
