//! `flowhost plugins list | new | inspect`.

use crate::output::{plugin_json, print_plugin};
use anyhow::Context;
use flowhost::config::OperatorConfig;
use flowhost::scaffold::{Source, new_plugin};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
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
        /// A flowhost checkout to take `flowhost-sdk` from, for working on the SDK itself
        /// (default: a copy of the SDK this binary carries, in the crate's `vendor/`).
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
    /// Run an element once without a flow: its exit, the variables it set, its log and each
    /// HTTP request with its status and time, under the operator's grants and limits
    /// (`[plugins.<id>]` in flowhost.toml).
    Run {
        /// A `.wasm` component.
        file: PathBuf,
        /// A field of the element's configuration in a flow, `NAME=VALUE` (JSON when it
        /// parses, else text). (`--config` names the operator's flowhost.toml.)
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// A flow variable before the step, `NAME=VALUE`.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// The person, as JSON: {"id": "...", "emails": [...], "attributes": {...}}.
        #[arg(long)]
        person: Option<String>,
        /// For this run, an operator setting of the plugin, `NAME=VALUE` (added to
        /// `[plugins.<id>] settings`).
        #[arg(long = "setting", value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// For this run, an operator secret of the plugin, `NAME=VALUE`.
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
        /// For this run, a host the plugin may reach (`api.example.com`, `127.0.0.1:8080`);
        /// a loopback address is allowed as private too.
        #[arg(long = "allow-host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Print one JSON object: plugin, exit, failure, set, logs, data, duration_ms.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: Command, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { json } => {
            let host = flowhost::runtime::plugin_host(&config)?;
            let (registry, errors) = host.load_dir().await;
            for e in &errors {
                eprintln!("warning: {e}");
            }
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
        Command::New {
            name,
            dir,
            flowhost_path,
        } => {
            let source = match flowhost_path {
                Some(root) if root.join("sdk/Cargo.toml").is_file() => {
                    Source::Path(std::fs::canonicalize(&root).unwrap_or(root))
                }
                Some(root) => anyhow::bail!(
                    "--flowhost-path {}: no sdk/Cargo.toml there; name a flowhost checkout, or leave the option out to use the SDK this binary carries",
                    root.display()
                ),
                None => Source::Bundled,
            };
            let me = std::env::current_exe().context("finding the flowhost binary's path")?;
            new_plugin(&dir, &name, &source, &me)?;
            let at = dir.join(&name);
            println!("created {}", at.display());
            match &source {
                Source::Path(root) => println!("  flowhost-sdk comes from {}", root.display()),
                Source::Bundled => println!(
                    "  flowhost-sdk {} is in vendor/flowhost-sdk (for the WIT this host serves); its test runs {}",
                    env!("CARGO_PKG_VERSION"),
                    me.display()
                ),
            }
            println!(
                "  cd {} && cargo test      # build the component and run it on the host",
                at.display()
            );
            println!(
                "  (if cargo says the toolchain is not installed: `rustup toolchain install` in the crate)"
            );
            println!("  cargo build --release --target wasm32-wasip2");
            println!(
                "  flowhost plugins run target/wasm32-wasip2/release/{}.wasm --setting base_url=http://127.0.0.1:8080 --allow-host 127.0.0.1:8080 --secret api_token=dev --person '{{\"id\": \"p1\"}}'",
                name.replace('-', "_")
            );
        }
        Command::Run {
            file,
            fields,
            vars,
            person,
            settings,
            secrets,
            hosts,
            json,
        } => {
            let grant = TryGrant {
                settings,
                secrets,
                hosts,
            };
            let trial = Trial {
                file: &file,
                fields: &fields,
                vars: &vars,
                person: person.as_deref(),
                json,
            };
            return run_once(config, trial, grant).await;
        }
        Command::Inspect { file, json } => {
            let host = flowhost::runtime::plugin_host(&config)?;
            let was_cached = std::fs::read(&file)
                .map(|b| host.cache().probe(&b))
                .unwrap_or(false);
            let plugin = match host.load_file(&file).await {
                Ok(plugin) => plugin,
                // The folder's advice ("remove it from the plugins folder") is for files in
                // the folder; this one may be anywhere.
                Err(flowhost::plugin::LoadError::NotWasm { path }) => anyhow::bail!(
                    "{}: not a WebAssembly file; `flowhost plugins inspect` takes a component built for wasm32-wasip2",
                    path.display()
                ),
                // Its message already names the cause; printed once.
                Err(e) => anyhow::bail!("{e}"),
            };
            if json {
                println!("{}", plugin_json(&plugin));
            } else {
                print_plugin(&plugin, was_cached);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `plugins run` grants on top of flowhost.toml, for trying an element.
struct TryGrant {
    settings: Vec<String>,
    secrets: Vec<String>,
    hosts: Vec<String>,
}

impl TryGrant {
    /// Adds the grant to plugin `id`'s section of `config`.
    fn apply(self, id: &str, config: &mut OperatorConfig) -> anyhow::Result<()> {
        let text = |pairs: &[String], flag: &str| -> anyhow::Result<Vec<(String, String)>> {
            pairs
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("{flag}: {kv:?}: write NAME=VALUE"))
                })
                .collect()
        };
        let settings = text(&self.settings, "--setting")?;
        let secrets = text(&self.secrets, "--secret")?;
        for host in &self.hosts {
            let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
            if bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            {
                config.outbound.allow_private.push(bare.to_owned());
            }
        }
        let grant = config.plugins.entry(id.to_owned()).or_default();
        grant.allow_hosts.extend(self.hosts);
        grant.settings.extend(settings);
        grant.secrets.extend(
            secrets
                .into_iter()
                .map(|(k, v)| (k, flowhost::config::SecretSource::Value(v))),
        );
        Ok(())
    }
}

/// What `plugins run` runs: the component, the element's fields, the variables and person.
struct Trial<'a> {
    file: &'a Path,
    fields: &'a [String],
    vars: &'a [String],
    person: Option<&'a str>,
    json: bool,
}

/// `flowhost plugins run`: one step of the element in `trial.file`, printed.
async fn run_once(
    mut config: OperatorConfig,
    trial: Trial<'_>,
    grant: TryGrant,
) -> anyhow::Result<ExitCode> {
    let Trial {
        file,
        fields,
        vars,
        person,
        json,
    } = trial;
    let element = crate::setup::parse_vars(fields).context("--field")?;
    let variables = crate::setup::parse_vars(vars).context("--var")?;
    let person: flowhost::person::Person = match person {
        Some(text) => serde_json::from_str(text).context(
            "--person: expected JSON like {\"id\": \"p1\", \"emails\": [\"a@b.c\"], \"attributes\": {}}",
        )?,
        None => flowhost::person::Person {
            id: "cli-person".into(),
            ..Default::default()
        },
    };
    // The plugin's id is in its manifest: read it, then load it again under the grant.
    let plugin = match flowhost::runtime::plugin_host(&config)?
        .load_file(file)
        .await
    {
        Ok(plugin) => plugin,
        Err(e) => anyhow::bail!("{e}"),
    };
    grant.apply(&plugin.manifest.id, &mut config)?;
    let host = flowhost::runtime::plugin_host(&config)?;
    let plugin = host
        .load_file(file)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = plugin.key();
    let name = file.display().to_string();
    let started = std::time::Instant::now();
    let run = match flowhost::testing::run_element(
        host,
        plugin,
        element.into_iter().collect(),
        variables,
        &person,
    )
    .await
    {
        Ok(run) => run,
        Err(issues) => {
            for issue in issues {
                eprintln!("{name}: {issue}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "plugin": key,
                "exit": run.exit(),
                "failure": run.failure(),
                "set": run.changed,
                "logs": run.logs,
                "requests": run.requests,
                "data": run.data,
                "duration_ms": took,
            })
        );
    } else {
        print_run(&key, &run, took);
    }
    Ok(if run.exit().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A run as `plugins run` prints it for people.
fn print_run(key: &str, run: &flowhost::testing::PluginRun, took: f64) {
    match (run.exit(), run.failure()) {
        (Some(exit), _) => println!("plugin {key}: exit {exit} ({took:.1} ms)"),
        (None, failure) => println!(
            "plugin {key}: failed, leaves by error: {} ({took:.1} ms)",
            failure.unwrap_or_default()
        ),
    }
    for (k, v) in &run.changed {
        println!("  set {k} = {v}");
    }
    for r in &run.requests {
        println!("  request {}", crate::output::request_line(r));
    }
    for line in &run.logs {
        println!("  log {:?}: {}", line.level, line.message);
    }
    if let Some(data) = &run.data {
        println!("  data {data}");
    }
}
