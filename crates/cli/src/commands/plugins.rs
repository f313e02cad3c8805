//! `flowhost plugins list | new | inspect`.

use crate::output::{plugin_json, print_plugin};
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
            // This crate is crates/cli in the checkout it was built from.
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .map(Path::to_owned);
            let source =
                match flowhost_path.or(built_from.filter(|r| r.join("sdk/Cargo.toml").is_file())) {
                    Some(root) => Source::Path(std::fs::canonicalize(&root).unwrap_or(root)),
                    None => Source::Registry(env!("CARGO_PKG_VERSION").to_owned()),
                };
            new_plugin(&dir, &name, &source)?;
            let at = dir.join(&name);
            println!("created {}", at.display());
            match &source {
                Source::Path(root) => {
                    println!("  flowhost-sdk and flowhost come from {}", root.display())
                }
                Source::Registry(version) => println!(
                    "  flowhost-sdk and flowhost come from crates.io ({version}); the checkout this binary was built from is gone: if they are not on your registry, pass --flowhost-path to a flowhost checkout"
                ),
            }
            println!(
                "  cd {} && cargo test      # build the component and run it on the host",
                at.display()
            );
            println!("  cargo build --release --target wasm32-wasip2");
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
