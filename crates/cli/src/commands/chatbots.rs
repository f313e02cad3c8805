//! `flowhost chatbots add BOT.json | list | stop ID`.

use crate::setup;
use anyhow::Context;
use flowhost::answers::{Answers, BackendConfig, BotStatus, Chatbot};
use flowhost::config::OperatorConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
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

pub async fn run(command: Command, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    match command {
        Command::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let de = &mut serde_json::Deserializer::from_str(&text);
            let bot: Chatbot = serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", file.display(), e.path(), e.inner()))?;
            let store = setup::store(&config).await?;
            Answers::save_chatbot(store.as_ref(), &bot)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "chatbot {:?} is on {} sender {}",
                bot.id, bot.channel, bot.sender
            );
        }
        Command::List => {
            let store = setup::store(&config).await?;
            for bot in Answers::chatbots(store.as_ref()).await? {
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
        Command::Stop { id } => {
            let runtime = setup::runtime(config).await?;
            let woken = runtime.inbound().stop_chatbot(&id).await?;
            println!(
                "chatbot {id:?} is stopped; {} participants left their sessions",
                woken.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
