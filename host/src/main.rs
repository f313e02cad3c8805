//! The `flowhost` command line: inspect plugins, validate and run flows, resume waiting
//! participants, and run the demo.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use flowhost::answers::{Answers, BackendConfig, BotStatus, Chatbot};
use flowhost::clock::Clock;
use flowhost::clock::SystemClock;
use flowhost::config::{OperatorConfig, SecretSource};
use flowhost::conversations::{ConversationStatus, Conversations};
use flowhost::elements::ElementTypes;
use flowhost::engine::{CompiledFlow, Engine};
use flowhost::flow::{FlowDef, FlowStatus};
use flowhost::messaging::{Channel, InboundMessage};
use flowhost::person::{AttributeType, Contact, People, Person};
use flowhost::plugin::{LoadedPlugin, PluginHost, PluginRegistry};
use flowhost::store::{JourneyEntry, ParticipantState, SqliteStore, StateStore};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

#[derive(Subcommand)]
enum Command {
    /// Work with plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Check a flow definition against the built-ins and the loaded plugins.
    Validate {
        /// Flow definition (JSON).
        flow: PathBuf,
    },
    /// Deploy a flow and run one participant until the flow ends or waits.
    Run {
        /// Flow definition (JSON).
        flow: PathBuf,
        /// The person, as JSON: {"id": "...", "emails": [...], "attributes": {...}}.
        #[arg(long, conflicts_with = "person_id")]
        person: Option<String>,
        /// A person kept in People, by id or contact (see `flowhost people`).
        #[arg(long)]
        person_id: Option<String>,
        /// A flow variable, `name=value`; the value is JSON when it parses, else text.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Print the journey as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Resume waiting participants whose time has come.
    Resume {
        /// Print journeys as JSON lines.
        #[arg(long)]
        json: bool,
        /// Keep going: resume due participants every MS milliseconds until interrupted
        /// (Ctrl-C), so waits, delivery windows, sending queues and retries are released on
        /// time without cron.
        #[arg(long, value_name = "MS")]
        watch: Option<u64>,
    },
    /// Show how many participants wait in an element: queued by its sending speed, outside
    /// its delivery window, or waiting to retry.
    Queue {
        /// Flow id.
        flow: String,
        /// Element id.
        element: String,
    },
    /// Print a participant's journey.
    Journey {
        /// Participant id.
        participant: String,
        /// Print as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Validate and save a flow without running anyone (for flows entered by inbound
    /// messages or from other flows).
    Deploy {
        /// Flow definition (JSON).
        flow: PathBuf,
    },
    /// Work with deployed flows: list them, change their lifecycle status.
    Flows {
        #[command(subcommand)]
        command: FlowsCommand,
    },
    /// Per element of a flow: participants entered, left per exit, waiting now.
    Analytics {
        /// Flow id.
        flow: String,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Take in a message a person sent to one of our senders, and show where it went.
    Inbound {
        /// Channel: sms, whatsapp, viber, rcs, telegram, messenger, email.
        #[arg(long)]
        channel: String,
        /// The person's contact (phone number, email).
        #[arg(long)]
        from: String,
        /// Our sender it was sent to.
        #[arg(long)]
        to: String,
        /// Message text.
        text: String,
    },
    /// People profiles.
    People {
        #[command(subcommand)]
        command: PeopleCommand,
    },
    /// Live-agent conversations.
    Conversations {
        #[command(subcommand)]
        command: ConversationsCommand,
    },
    /// Chatbots (Answers).
    Chatbots {
        #[command(subcommand)]
        command: ChatbotsCommand,
    },
    /// Turn Answers (chatbots in flows) on or off for the account.
    Answers {
        /// `enable` or `disable`.
        #[arg(value_parser = ["enable", "disable"])]
        switch: String,
    },
    /// Run the sample flow against a local shop API (the README's first command).
    Demo,
}

#[derive(Subcommand)]
enum FlowsCommand {
    /// List deployed flows with their status and entry points.
    List,
    /// Change a flow's status: draft -> active -> finished, or canceled.
    Status {
        /// Flow id.
        flow: String,
        /// New status.
        #[arg(value_parser = ["draft", "active", "finished", "canceled"])]
        status: String,
    },
}

#[derive(Subcommand)]
enum PeopleCommand {
    /// Create a profile: {"phones": [...], "emails": [...], "attributes": {...}}.
    Add {
        /// The profile as JSON.
        person: String,
    },
    /// Show a profile by id or contact (phone number or email).
    Get {
        /// Id, phone number or email.
        who: String,
    },
    /// Declare a custom attribute and its type.
    Define {
        /// Attribute name.
        name: String,
        /// text, number, boolean, date or list.
        #[arg(value_parser = ["text", "number", "boolean", "date", "list"])]
        kind: String,
    },
}

#[derive(Subcommand)]
enum ConversationsCommand {
    /// List conversations, oldest first.
    List {
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only this status: open, assigned, closed.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON lines (with messages).
        #[arg(long)]
        json: bool,
    },
    /// Create a tag.
    Tag {
        /// Tag name.
        name: String,
    },
    /// Assign a conversation to an agent.
    Assign {
        /// Conversation id.
        id: String,
        /// Agent name.
        agent: String,
    },
    /// Reply as the assigned agent.
    Reply {
        /// Conversation id.
        id: String,
        /// Text.
        text: String,
    },
    /// Close a conversation.
    Close {
        /// Conversation id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ChatbotsCommand {
    /// Add or replace a chatbot from a JSON file (see docs/journeys.md).
    Add {
        /// Chatbot definition.
        file: PathBuf,
    },
    /// List chatbots.
    List,
    /// Stop (deactivate) a chatbot; participants in its sessions leave by "deactivated".
    Stop {
        /// Chatbot id.
        id: String,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List the plugins in the plugins folder, and the files that failed to load.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin crate, ready to build and test.
    New {
        /// Plugin id and crate name (lowercase, dashes).
        name: String,
        /// Folder to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// A flowhost checkout to take `flowhost-sdk` and `flowhost` from (default: the one
        /// this binary was built from, if it is still there; otherwise crates.io).
        #[arg(long)]
        flowhost_path: Option<PathBuf>,
    },
    /// Show what a plugin file declares.
    Inspect {
        /// A `.wasm` component.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
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
            std::process::ExitCode::FAILURE
        }
    }
}

fn operator_config(path: Option<&Path>) -> anyhow::Result<OperatorConfig> {
    match path {
        Some(p) => Ok(OperatorConfig::load(p)?),
        None if Path::new("flowhost.toml").is_file() => {
            Ok(OperatorConfig::load(Path::new("flowhost.toml"))?)
        }
        None => Ok(OperatorConfig::default()),
    }
}

/// Loads the plugins folder, reporting bad files on stderr (they do not stop the rest).
async fn load_plugins(config: &OperatorConfig) -> anyhow::Result<(PluginHost, PluginRegistry)> {
    let host = PluginHost::new(config)?;
    let (registry, errors) = host.load_dir().await;
    for e in &errors {
        eprintln!("warning: {e}");
    }
    Ok((host, registry))
}

async fn engine(config: &OperatorConfig) -> anyhow::Result<Engine> {
    let (host, registry) = load_plugins(config).await?;
    let store = SqliteStore::open(&config.database)?;
    let client = host.http_client().clone();
    let types = ElementTypes::with_plugins(host, Arc::new(registry))
        .with_call_api(client, &config.call_api)?;
    Ok(Engine::new(Arc::new(store), Arc::new(SystemClock), types))
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = operator_config(cli.config.as_deref())?;
    match cli.command {
        Command::Plugins {
            command: PluginsCommand::List { json },
        } => {
            let (_host, registry) = load_plugins(&config).await?;
            if json {
                for p in registry.iter() {
                    println!("{}", plugin_json(p));
                }
            } else if registry.is_empty() {
                println!("no plugins in {}", config.plugins_dir.display());
            } else {
                println!("{:<24} {:<10} {:<6} FILE", "ID", "VERSION", "WIT");
                for p in registry.iter() {
                    println!(
                        "{:<24} {:<10} {:<6} {}",
                        p.manifest.id,
                        p.manifest.version,
                        p.wit_version,
                        p.path.display()
                    );
                }
            }
        }
        Command::Plugins {
            command:
                PluginsCommand::New {
                    name,
                    dir,
                    flowhost_path,
                },
        } => {
            use flowhost::scaffold::{Source, new_plugin};
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_owned);
            let source =
                match flowhost_path.or(built_from.filter(|r| r.join("sdk/Cargo.toml").is_file())) {
                    Some(root) => Source::Path(std::fs::canonicalize(&root).unwrap_or(root)),
                    None => Source::Registry(env!("CARGO_PKG_VERSION").to_owned()),
                };
            new_plugin(&dir, &name, &source)?;
            let at = dir.join(&name);
            println!("created {}", at.display());
            println!(
                "  cd {} && cargo test      # build the component and run it on the host",
                at.display()
            );
            println!("  cargo build --release --target wasm32-wasip2");
        }
        Command::Plugins {
            command: PluginsCommand::Inspect { file, json },
        } => {
            let host = PluginHost::new(&config)?;
            let was_cached = std::fs::read(&file)
                .map(|b| host.cache().probe(&b))
                .unwrap_or(false);
            let plugin = host.load_file(&file).await?;
            if json {
                println!("{}", plugin_json(&plugin));
            } else {
                print_plugin(&plugin, was_cached);
            }
        }
        Command::Validate { flow } => {
            let def = FlowDef::load(&flow)?;
            let engine = engine(&config).await?;
            let name = flow.display().to_string();
            let Some(f) = reported(&name, engine.compile(def, &name).await.map(Arc::new)) else {
                return Ok(std::process::ExitCode::FAILURE);
            };
            println!(
                "{name}: flow {:?} is valid ({} elements, {} warnings)",
                f.def.id,
                f.def.elements.len(),
                f.warnings.len()
            );
        }
        Command::Run {
            flow,
            person,
            person_id,
            vars,
            json,
        } => {
            let def = FlowDef::load(&flow)?;
            let person: Person = match (person, person_id) {
                (Some(text), _) => serde_json::from_str(&text)
                    .context("--person: expected JSON like {\"id\": \"p1\", \"emails\": [\"a@b.c\"], \"attributes\": {}}")?,
                (None, Some(who)) => {
                    find_person(&SqliteStore::open(&config.database)?, &who).await.context("--person-id")?
                }
                (None, None) => Person {
                    id: "cli-person".into(),
                    ..Person::default()
                },
            };
            let variables = parse_vars(&vars)?;
            let engine = engine(&config).await?;
            let flow_id = def.id.clone();
            let name = flow.display().to_string();
            if reported(&name, engine.deploy(def, &name).await).is_none() {
                return Ok(std::process::ExitCode::FAILURE);
            }
            let p = engine.start(&flow_id, person, variables).await?;
            // Requests sent without waiting finish before the journey is printed.
            engine.finish_background().await;
            print_participant(&engine, &p, json).await?;
        }
        Command::Resume { json, watch: None } => {
            let engine = saved_engine(&config).await?;
            let resumed = engine.resume_due().await?;
            engine.finish_background().await;
            if !json {
                println!("{} participants resumed", resumed.len());
            }
            for p in &resumed {
                print_participant(&engine, p, json).await?;
            }
        }
        Command::Resume {
            json,
            watch: Some(every_ms),
        } => {
            let engine = engine(&config).await?;
            let mut tick =
                tokio::time::interval(std::time::Duration::from_millis(every_ms.max(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if !json {
                eprintln!("resuming due participants every {every_ms} ms; Ctrl-C stops");
            }
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tick.tick() => {}
                }
                // Flows deployed by other processes since the last round.
                for e in engine.load_saved_flows().await? {
                    eprintln!("warning: {e}");
                }
                match engine.resume_due().await {
                    Ok(resumed) => {
                        for p in &resumed {
                            print_participant(&engine, p, json).await?;
                        }
                    }
                    // A participant of a flow this process cannot run stays waiting.
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            engine.finish_background().await;
        }
        Command::Queue { flow, element } => {
            let engine = engine(&config).await?;
            let mut counts = Vec::new();
            for kind in ["queued", "window", "retry"] {
                counts.push(engine.waiting_count(&flow, &element, kind).await?);
            }
            println!(
                "{flow}/{element}: {} queued (sending speed), {} outside the delivery window, {} waiting to retry",
                counts[0], counts[1], counts[2]
            );
        }
        Command::Journey { participant, json } => {
            let engine = engine(&config).await?;
            let p = engine.participant(&participant).await?;
            print_participant(&engine, &p, json).await?;
        }
        Command::Demo => demo(config).await?,
        Command::Deploy { flow } => {
            let def = FlowDef::load(&flow)?;
            let engine = engine(&config).await?;
            let name = flow.display().to_string();
            let Some(f) = reported(&name, engine.deploy(def, &name).await) else {
                return Ok(std::process::ExitCode::FAILURE);
            };
            println!(
                "{name}: flow {:?} deployed ({})",
                f.def.id,
                f.def.status.as_str()
            );
        }
        Command::Flows { command } => {
            let engine = saved_engine(&config).await?;
            match command {
                FlowsCommand::List => {
                    for id in engine.flow_ids() {
                        let def = engine.flow_def(&id)?;
                        let entries: Vec<&str> =
                            def.entry_points.iter().map(|e| e.kind.as_str()).collect();
                        println!(
                            "{id:<24} {:<9} {:>3} elements  entry: {}",
                            def.status.as_str(),
                            def.elements.len(),
                            entries.join(", ")
                        );
                    }
                }
                FlowsCommand::Status { flow, status } => {
                    let status: FlowStatus = serde_json::from_value(json!(status))?;
                    if let Err(e) = engine.set_flow_status(&flow, status).await {
                        eprintln!("{e}");
                        return Ok(std::process::ExitCode::FAILURE);
                    }
                    println!("flow {flow:?} is {}", status.as_str());
                }
            }
        }
        Command::Analytics { flow, json } => {
            let engine = saved_engine(&config).await?;
            let rows = engine.analytics(&flow).await?;
            if json {
                for row in &rows {
                    println!("{}", serde_json::to_string(row)?);
                }
            } else {
                print_analytics(&rows);
            }
        }
        Command::Inbound {
            channel,
            from,
            to,
            text,
        } => {
            let channel: Channel = serde_json::from_value(json!(channel)).map_err(|_| {
                anyhow::anyhow!(
                    "--channel {channel:?}: use sms, whatsapp, viber, rcs, telegram, messenger or email"
                )
            })?;
            let engine = saved_engine(&config).await?;
            let delivery = engine
                .receive_inbound(InboundMessage {
                    channel,
                    from,
                    to,
                    text,
                    received_at: None,
                })
                .await?;
            engine.finish_background().await;
            println!("{}", serde_json::to_string(&delivery)?);
        }
        Command::People { command } => {
            let store = SqliteStore::open(&config.database)?;
            let people = People::new(&store);
            match command {
                PeopleCommand::Add { person } => {
                    let person: Person = serde_json::from_str(&person).context(
                        "expected JSON like {\"phones\": [\"+385911234567\"], \"attributes\": {\"firstName\": \"Ada\"}}",
                    )?;
                    let person = people.create(person).await?;
                    println!("{}", serde_json::to_string(&person)?);
                }
                PeopleCommand::Get { who } => {
                    println!(
                        "{}",
                        serde_json::to_string(&find_person(&store, &who).await?)?
                    )
                }
                PeopleCommand::Define { name, kind } => {
                    let ty: AttributeType = serde_json::from_value(json!(kind))?;
                    people.define_attribute(&name, ty).await?;
                    println!("attribute {name:?} is {kind}");
                }
            }
        }
        Command::Conversations { command } => {
            let store = SqliteStore::open(&config.database)?;
            let agents = Conversations::new(&store);
            let now = SystemClock.now_ms();
            match command {
                ConversationsCommand::List { tag, status, json } => {
                    let status = status
                        .map(|s| {
                            serde_json::from_value::<ConversationStatus>(json!(s)).map_err(|_| {
                                anyhow::anyhow!("--status {s:?}: use open, assigned or closed")
                            })
                        })
                        .transpose()?;
                    for c in agents.list(tag.as_deref(), status).await? {
                        if json {
                            println!("{}", serde_json::to_string(&c)?);
                        } else {
                            println!(
                                "{}  {:<9} {:<16} {:<10} {} via {} to {} ({} messages)",
                                c.id,
                                c.status.as_str(),
                                c.tag,
                                c.agent.as_deref().unwrap_or("-"),
                                c.contact,
                                c.channel,
                                c.sender,
                                c.messages.len()
                            );
                        }
                    }
                }
                ConversationsCommand::Tag { name } => {
                    agents.create_tag(&name).await?;
                    println!("tag {name:?} exists");
                }
                ConversationsCommand::Assign { id, agent } => {
                    agents.assign(&id, &agent).await?;
                    println!("conversation {id} is assigned to {agent}");
                }
                ConversationsCommand::Reply { id, text } => {
                    agents.reply(&id, &text, now).await?;
                    println!("replied in conversation {id}");
                }
                ConversationsCommand::Close { id } => {
                    agents.close(&id, now).await?;
                    println!("conversation {id} is closed");
                }
            }
        }
        Command::Chatbots { command } => match command {
            ChatbotsCommand::Add { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let de = &mut serde_json::Deserializer::from_str(&text);
                let bot: Chatbot = serde_path_to_error::deserialize(de).map_err(|e| {
                    anyhow::anyhow!("{}: {}: {}", file.display(), e.path(), e.inner())
                })?;
                let store = SqliteStore::open(&config.database)?;
                Answers::save_chatbot(&store, &bot)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                println!(
                    "chatbot {:?} is on {} sender {}",
                    bot.id, bot.channel, bot.sender
                );
            }
            ChatbotsCommand::List => {
                let store = SqliteStore::open(&config.database)?;
                for bot in Answers::chatbots(&store).await? {
                    let kind = match bot.backend {
                        BackendConfig::Scripted(_) => "scripted".to_owned(),
                        BackendConfig::Webhook { url, .. } => format!("webhook {url}"),
                    };
                    println!(
                        "{:<20} {:<8} {:<10} {:<16} {kind}",
                        bot.id,
                        match bot.status {
                            BotStatus::Active => "active",
                            BotStatus::Stopped => "stopped",
                        },
                        bot.channel,
                        bot.sender
                    );
                }
            }
            ChatbotsCommand::Stop { id } => {
                let engine = saved_engine(&config).await?;
                let woken = engine.stop_chatbot(&id).await?;
                println!(
                    "chatbot {id:?} is stopped; {} participants left their sessions",
                    woken.len()
                );
            }
        },
        Command::Answers { switch } => {
            let store = SqliteStore::open(&config.database)?;
            Answers::set_enabled(&store, switch == "enable").await?;
            println!("Answers is {switch}d");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Prints a checked flow's warnings, or its issues (one per line); `None` when it has issues.
fn reported<E: std::fmt::Display>(
    name: &str,
    result: Result<Arc<CompiledFlow>, E>,
) -> Option<Arc<CompiledFlow>> {
    match result {
        Ok(flow) => {
            for w in &flow.warnings {
                eprintln!("warning: {name}: {w}");
            }
            Some(flow)
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// The analytics table: per element, entered, waiting and left per exit.
fn print_analytics(rows: &[flowhost::engine::ElementAnalytics]) {
    println!(
        "{:<20} {:<28} {:>7} {:>7}  EXITS",
        "ELEMENT", "TYPE", "ENTERED", "WAITING"
    );
    for row in rows {
        let exits: Vec<String> = row
            .counts
            .exits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{:<20} {:<28} {:>7} {:>7}  {}",
            row.element_id,
            row.element_type,
            row.counts.entered,
            row.counts.waiting,
            exits.join(" ")
        );
    }
}

/// A person kept in People, by id or by contact.
async fn find_person(store: &dyn StateStore, who: &str) -> anyhow::Result<Person> {
    let people = People::new(store);
    if let Some(p) = people.get(who).await? {
        return Ok(p);
    }
    if let Ok(contact) = Contact::guess(who)
        && let Some(p) = people.find(&contact).await?
    {
        return Ok(p);
    }
    bail!("no person with id or contact {who:?}; add one with `flowhost people add`")
}

/// An engine with the flows saved in the database loaded.
async fn saved_engine(config: &OperatorConfig) -> anyhow::Result<Engine> {
    let engine = engine(config).await?;
    for e in engine.load_saved_flows().await? {
        eprintln!("warning: {e}");
    }
    Ok(engine)
}

fn parse_vars(vars: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
    vars.iter()
        .map(|kv| {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--var {kv:?}: write NAME=VALUE");
            };
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            Ok((k.to_owned(), value))
        })
        .collect()
}

fn plugin_json(p: &LoadedPlugin) -> Value {
    json!({
        "id": p.manifest.id,
        "version": p.manifest.version.to_string(),
        "wit_version": p.wit_version,
        "name": p.manifest.name,
        "description": p.manifest.description,
        "exits": p.manifest.exits,
        "config": p.manifest.config,
        "hosts": p.manifest.hosts,
        "file": p.path,
        "size": p.size,
        "cache": p.cache,
        "limits": {
            "deadline_ms": p.limits.deadline_ms,
            "memory_mib": p.limits.memory_mib,
            "max_http_requests": p.limits.max_http_requests,
            "max_response_bytes": p.limits.max_response_bytes,
        },
        "granted_hosts": p.policy.granted.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        "missing_secrets": p.missing_secrets,
    })
}

fn print_plugin(p: &LoadedPlugin, was_cached: bool) {
    let m = &p.manifest;
    println!("{} {} — {}", m.id, m.version, m.name);
    if !m.description.is_empty() {
        println!("  {}", m.description);
    }
    println!("  file:     {} ({} bytes)", p.path.display(), p.size);
    println!("  WIT:      flowhost:element@{}", p.wit_version);
    println!(
        "  cache:    {}",
        if was_cached {
            "cached (no compile needed)".to_owned()
        } else {
            p.cache.to_string()
        }
    );
    println!(
        "  exits:    {}",
        m.exits
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  config:");
    for f in &m.config {
        println!(
            "    {:<20} {:<8} {}{}{}",
            f.name,
            f.kind.name(),
            if f.required { "required" } else { "optional" },
            if f.secret {
                ", secret (set by the operator)"
            } else {
                ""
            },
            f.default
                .as_ref()
                .map(|d| format!(", default {d}"))
                .unwrap_or_default()
        );
    }
    println!(
        "  hosts:    declared {}; granted {}",
        if m.hosts.is_empty() {
            "none".into()
        } else {
            m.hosts.join(", ")
        },
        if p.policy.granted.is_empty() {
            "none".into()
        } else {
            p.policy
                .granted
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  limits:   {} ms, {} MiB, {} requests, {} byte responses",
        p.limits.deadline_ms,
        p.limits.memory_mib,
        p.limits.max_http_requests,
        p.limits.max_response_bytes
    );
    if !p.missing_secrets.is_empty() {
        println!("  missing secrets: {}", p.missing_secrets.join(", "));
    }
}

async fn print_participant(
    engine: &Engine,
    p: &ParticipantState,
    json: bool,
) -> anyhow::Result<()> {
    let journey = engine.journey(&p.id).await?;
    if json {
        for e in &journey {
            println!(
                "{}",
                serde_json::to_string(&json!({"participant": p.id, "step": e}))?
            );
        }
        println!(
            "{}",
            json!({"participant": p.id, "flow": p.flow_id, "status": p.status,
                   "current": p.current, "waiting_until": p.waiting_until, "variables": p.variables})
        );
        return Ok(());
    }
    println!(
        "participant {} ({}) in flow {:?}: {}{}",
        p.id,
        p.person.id,
        p.flow_id,
        p.status.as_str(),
        match (&p.current, p.waiting_until) {
            (Some(at), Some(until)) => format!(" in {at:?} until {}", format_ms(until)),
            _ => String::new(),
        }
    );
    println!(
        "  {:>3}  {:<14} {:<34} {:<18} {:<14} {:>9}",
        "#", "ELEMENT", "TYPE", "EXIT", "NEXT", "TIME"
    );
    for e in &journey {
        print_entry(e);
    }
    Ok(())
}

fn print_entry(e: &JourneyEntry) {
    let exit = match (&e.exit, e.waiting_until) {
        (Some(x), _) => x.clone(),
        (None, Some(_)) => "(waits)".into(),
        (None, None) => "(end)".into(),
    };
    println!(
        "  {:>3}  {:<14} {:<34} {:<18} {:<14} {:>9}",
        e.seq,
        e.element_id,
        e.element_type,
        exit,
        e.next.as_deref().unwrap_or("-"),
        format!("{:.2} ms", e.duration_us as f64 / 1000.0)
    );
    for (k, v) in &e.variables_changed {
        println!("         set {k} = {v}");
    }
    if let Some(err) = &e.error {
        println!("         error: {err}");
    }
    for l in &e.logs {
        println!("         log {:?}: {}", l.level, l.message);
    }
    if let Some(until) = e.waiting_until {
        println!("         waits until {}", format_ms(until));
    }
}

fn format_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

/// Grants a sample plugin its emulator: host, `base_url` and one secret.
fn grant_emulator(
    config: &mut OperatorConfig,
    plugin: &str,
    addr: std::net::SocketAddr,
    base_url: &str,
    secret: (&str, &str),
) {
    let grant = config.plugins.entry(plugin.into()).or_default();
    grant.allow_hosts.push(addr.to_string());
    grant
        .settings
        .insert("base_url".into(), base_url.to_owned());
    grant
        .secrets
        .insert(secret.0.into(), SecretSource::Value(secret.1.into()));
}

/// The main job: the sample flows, run against local emulators of the APIs they call.
async fn demo(mut config: OperatorConfig) -> anyhow::Result<()> {
    use flowhost::demo::{crm::CrmApi, genai::ChatApi, webinar::WebinarApi};
    let shop = flowhost::demo::ShopApi::start().await?;
    println!("shop API listening on {}", shop.url());
    let webinar = WebinarApi::start("demo-zoom-token").await;
    let chat = ChatApi::start("demo-openai-key").await;
    let crm = CrmApi::start("demo-hubspot-token").await;
    println!(
        "webinar API on {}, chat completions API on {}, CRM API on {}",
        webinar.url(),
        chat.url(),
        crm.url()
    );
    grant_emulator(
        &mut config,
        "webinar-registration",
        webinar.server.addr,
        &webinar.url(),
        ("api_token", "demo-zoom-token"),
    );
    grant_emulator(
        &mut config,
        "genai-content",
        chat.server.addr,
        &chat.url(),
        ("api_key", "demo-openai-key"),
    );
    config
        .plugins
        .entry("genai-content".into())
        .or_default()
        .settings
        .insert("model".into(), "gpt-4o-mini".into());
    grant_emulator(
        &mut config,
        "crm-sync",
        crm.server.addr,
        &crm.url(),
        ("access_token", "demo-hubspot-token"),
    );
    // The shop emulator is on loopback, which outbound requests may not reach by default.
    config.outbound.allow_private.push("127.0.0.1".into());
    let grant = config.plugins.entry("order-status".into()).or_default();
    grant.allow_hosts.push(shop.addr.to_string());
    grant.settings.insert("base_url".into(), shop.url());
    grant.secrets.insert(
        "api_token".into(),
        SecretSource::Value(flowhost::demo::DEMO_TOKEN.into()),
    );
    config.call_api.secrets.insert(
        "shop_token".into(),
        SecretSource::Value(flowhost::demo::DEMO_TOKEN.into()),
    );
    // The demo keeps its state apart from any real database.
    let state_dir = tempfile_dir()?;
    config.database = state_dir.join("demo.db");
    let started = std::time::Instant::now();
    let (host, registry) = load_plugins(&config).await?;
    for id in [
        "order-status",
        "webinar-registration",
        "genai-content",
        "crm-sync",
    ] {
        if registry.get(id, None).is_none() {
            bail!(
                "plugin {id} is not in {}; build the sample plugins with `./dev plugins`",
                config.plugins_dir.display()
            );
        }
    }
    let plugin = registry.get("order-status", None).expect("checked above");
    println!(
        "loaded {} plugin(s) from {} in {:.0} ms (order-status: {})",
        registry.len(),
        config.plugins_dir.display(),
        started.elapsed().as_secs_f64() * 1000.0,
        plugin.cache
    );
    let client = host.http_client().clone();
    let engine = Engine::new(
        Arc::new(SqliteStore::open(&config.database)?),
        Arc::new(SystemClock),
        ElementTypes::with_plugins(host, Arc::new(registry))
            .with_call_api(client, &config.call_api)?,
    );
    let flow = FlowDef::parse(
        include_str!("../../examples/order-updates.json"),
        "examples/order-updates.json",
    )?;
    let flow_id = flow.id.clone();
    engine.deploy(flow, "examples/order-updates.json").await?;
    let people = [
        ("grace", "1001", "gold"),
        ("alan", "1002", "silver"),
        ("ada", "1003", "silver"),
        ("linus", "9999", "silver"),
    ];
    for (name, order, tier) in people {
        let person = demo_person(name, json!({"firstName": name, "tier": tier}));
        let vars = BTreeMap::from([
            ("order_id".to_owned(), json!(order)),
            ("shop_url".to_owned(), json!(shop.url())),
        ]);
        let p = engine.start(&flow_id, person, vars).await?;
        println!();
        print_participant(&engine, &p, false).await?;
    }

    let campaign = FlowDef::parse(
        include_str!("../../examples/webinar-campaign.json"),
        "examples/webinar-campaign.json",
    )?;
    let campaign_id = campaign.id.clone();
    engine
        .deploy(campaign, "examples/webinar-campaign.json")
        .await?;
    // Grace twice: the second time she is already registered.
    for (id, first, last) in [
        ("grace", "Grace", "Hopper"),
        ("alan", "Alan", "Turing"),
        ("grace", "Grace", "Hopper"),
    ] {
        let person = demo_person(id, json!({"firstName": first, "lastName": last}));
        let p = engine.start(&campaign_id, person, BTreeMap::new()).await?;
        println!();
        print_participant(&engine, &p, false).await?;
    }

    support_desk(&engine).await?;
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// The support desk: people write in on WhatsApp, a scripted chatbot answers, and whoever
/// asks for an agent gets a conversation an agent takes over.
async fn support_desk(engine: &Engine) -> anyhow::Result<()> {
    const SENDER: &str = "447491163443";
    let store = engine.store();
    Answers::set_enabled(store, true).await?;
    let bot: Chatbot = serde_json::from_str(include_str!("../../examples/helper-bot.json"))?;
    Answers::save_chatbot(store, &bot).await?;
    for (text, name) in [
        (
            include_str!("../../examples/feedback.json"),
            "examples/feedback.json",
        ),
        (
            include_str!("../../examples/support-desk.json"),
            "examples/support-desk.json",
        ),
    ] {
        engine.deploy(FlowDef::parse(text, name)?, name).await?;
    }
    println!("\nsupport desk: chatbot {:?} on whatsapp {SENDER}", bot.id);
    let chats = [
        (
            "+44 7700 900123",
            &["help", "What are your opening hours?", "hours", "bye"][..],
        ),
        (
            "+44 7700 900456",
            &["help", "My parcel arrived broken", "agent please"][..],
        ),
    ];
    for (from, messages) in chats {
        for text in messages {
            let delivery = engine
                .receive_inbound(InboundMessage {
                    channel: Channel::Whatsapp,
                    from: from.into(),
                    to: SENDER.into(),
                    text: (*text).into(),
                    received_at: None,
                })
                .await?;
            println!(
                "  {from} > {text:<32} -> {}",
                serde_json::to_string(&delivery)?
            );
        }
        let contact = Contact::phone(from).map_err(anyhow::Error::msg)?;
        for m in flowhost::messaging::recent_messages(store, &contact, 20).await? {
            let who = match m.author {
                flowhost::messaging::Author::Person => "person",
                flowhost::messaging::Author::Bot => "bot",
                flowhost::messaging::Author::Agent => "agent",
            };
            println!("    {who:>6}: {}", m.text.replace('\n', " / "));
        }
    }
    let agents = Conversations::new(store);
    for c in agents
        .list(Some("support"), Some(ConversationStatus::Open))
        .await?
    {
        agents.assign(&c.id, "maria").await?;
        agents
            .reply(
                &c.id,
                "Maria here, sorry about that. A new one is on its way.",
                engine.now(),
            )
            .await?;
        let c = agents.close(&c.id, engine.now()).await?;
        println!(
            "  conversation {} (tag {}) with {}: {} messages, assigned to maria, closed",
            c.id,
            c.tag,
            c.contact,
            c.messages.len()
        );
    }
    println!("\nanalytics of support-desk:");
    print_analytics(&engine.analytics("support-desk").await?);
    Ok(())
}

/// A demo person with an `@example.com` address.
fn demo_person(id: &str, attributes: Value) -> Person {
    Person {
        id: id.into(),
        emails: vec![format!("{id}@example.com")],
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        ..Person::default()
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("flowhost-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
