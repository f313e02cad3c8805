//! The `flowhost` command line: the clap tree and dispatch. Each command lives in its own
//! file under `commands/`; what they print is in `output`. Everything they run is built by
//! the library's composition root, `flowhost::runtime`.

mod commands;
mod output;
mod setup;

use clap::{Parser, Subcommand};
use commands::*;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flowhost",
    version,
    about = "Customer-messaging flows with WebAssembly plugin elements"
)]
struct Cli {
    /// Operator configuration; defaults to ./flowhost.toml when present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// How diagnostics go to stderr: `human` lines or `json` lines (one object per event,
    /// with the flow, element, participant and plugin of the step it happened in). What is
    /// logged is set by FLOWHOST_LOG (e.g. `info`, `flowhost=debug`); warnings by default.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "FLOWHOST_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugins.
    Plugins {
        #[command(subcommand)]
        command: plugins::Command,
    },
    /// Check a flow definition against the built-ins and the loaded plugins.
    Validate(validate::Args),
    /// Deploy a flow and run one participant until the flow ends or waits.
    Run(run::Args),
    /// Resume waiting participants whose time has come.
    Resume(resume::Args),
    /// Remove what `[retention]` no longer keeps: finished participants and their journeys,
    /// old messages, closed conversations, ended chatbot sessions, old idempotency keys.
    Prune(prune::Args),
    /// Show how many participants wait in an element: queued by its sending speed, outside
    /// its delivery window, or waiting to retry.
    Queue(queue::Args),
    /// Print a participant's journey.
    Journey(journey::Args),
    /// Validate and save a flow without running anyone (for flows entered by inbound
    /// messages or from other flows).
    Deploy(deploy::Args),
    /// Work with deployed flows: list them, change their lifecycle status.
    Flows {
        #[command(subcommand)]
        command: flows::Command,
    },
    /// Per element of a flow: participants entered, left per exit, waiting now.
    Analytics(analytics::Args),
    /// Take in a message a person sent to one of our senders, and show where it went.
    Inbound(inbound::Args),
    /// People profiles.
    People {
        #[command(subcommand)]
        command: people::Command,
    },
    /// What a person and our bots and agents wrote to each other (the message log).
    Messages(messages::Args),
    /// Live-agent conversations.
    Conversations {
        #[command(subcommand)]
        command: conversations::Command,
    },
    /// Chatbots (Answers).
    Chatbots {
        #[command(subcommand)]
        command: chatbots::Command,
    },
    /// Turn Answers (chatbots in flows) on or off for the account.
    Answers(answers::Args),
    /// Run as a service: the HTTP API and the scheduler, until SIGTERM or Ctrl-C.
    Serve(serve::Args),
    /// Run the sample flows against local API emulators (the README's first command).
    Demo(demo::Args),
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // wasmtime builds an error value when it disposes of a finished execution's fiber;
        // with RUST_BACKTRACE=1 each one would capture a std backtrace (~10 µs). Library
        // backtraces off, panic backtraces as the operator set them.
        #[allow(unsafe_code)]
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0")
        };
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the library's `tracing` events to stderr, filtered by FLOWHOST_LOG.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOWHOST_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = setup::operator_config(cli.config.as_deref())?;
    match cli.command {
        Command::Plugins { command } => plugins::run(command, config).await,
        Command::Validate(args) => validate::run(args, config).await,
        Command::Run(args) => run::run(args, config).await,
        Command::Resume(args) => resume::run(args, config).await,
        Command::Prune(args) => prune::run(args, config).await,
        Command::Queue(args) => queue::run(args, config).await,
        Command::Journey(args) => journey::run(args, config).await,
        Command::Deploy(args) => deploy::run(args, config).await,
        Command::Flows { command } => flows::run(command, config).await,
        Command::Analytics(args) => analytics::run(args, config).await,
        Command::Inbound(args) => inbound::run(args, config).await,
        Command::People { command } => people::run(command, config).await,
        Command::Messages(args) => messages::run(args, config).await,
        Command::Conversations { command } => conversations::run(command, config).await,
        Command::Chatbots { command } => chatbots::run(command, config).await,
        Command::Answers(args) => answers::run(args, config).await,
        Command::Serve(args) => serve::run(args, config).await,
        Command::Demo(args) => demo::run(args, config).await,
    }
}
