//! `flowhost conversations list | tag | assign | reply | close`: the agents' side.

use crate::setup;
use flowhost::clock::{Clock, SystemClock};
use flowhost::config::OperatorConfig;
use flowhost::conversations::{ConversationStatus, Conversations};
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
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

pub async fn run(command: Command, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let store = setup::store(&config).await?;
    let agents = Conversations::new(store.as_ref());
    let now = SystemClock.now_ms();
    match command {
        Command::List { tag, status, json } => {
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
        Command::Tag { name } => {
            agents.create_tag(&name).await?;
            println!("tag {name:?} exists");
        }
        Command::Assign { id, agent } => {
            agents.assign(&id, &agent).await?;
            println!("conversation {id} is assigned to {agent}");
        }
        Command::Reply { id, text } => {
            agents.reply(&id, &text, now).await?;
            println!("replied in conversation {id}");
        }
        Command::Close { id } => {
            agents.close(&id, now).await?;
            println!("conversation {id} is closed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
