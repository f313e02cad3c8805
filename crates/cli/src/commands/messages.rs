//! `flowhost messages CONTACT`: what a person and our bots and agents wrote to each other, from
//! the message log, with where sending each bot and agent message stands.

use crate::setup;
use anyhow::anyhow;
use flowhost::config::OperatorConfig;
use flowhost::messaging::{Author, Channel, recent_messages};
use flowhost::person::Contact;
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The person's phone number, email address or (with --channel) external id.
    contact: String,
    /// Only this channel (sms, whatsapp, viber, rcs, telegram, messenger, email); the contact
    /// is read as that channel's kind of address.
    #[arg(long)]
    channel: Option<String>,
    /// How many of the newest messages.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let channel = args
        .channel
        .as_deref()
        .map(|name| {
            serde_json::from_value::<Channel>(json!(name)).map_err(|_| {
                anyhow!(
                    "--channel {name:?}: use sms, whatsapp, viber, rcs, telegram, messenger or email"
                )
            })
        })
        .transpose()?;
    let contact = match channel {
        Some(c) => c.contact(&args.contact),
        None => Contact::guess(&args.contact),
    }
    .map_err(|e| anyhow!("{:?}: {e}", args.contact))?;
    let store = setup::store(&config).await?;
    let messages = recent_messages(store.as_ref(), &contact, args.limit).await?;
    let shown = messages
        .iter()
        .filter(|m| channel.is_none_or(|c| m.channel == c));
    for m in shown {
        if args.json {
            println!("{}", serde_json::to_string(m)?);
            continue;
        }
        let who = match (m.author, &m.by) {
            (Author::Person, _) => "person".to_owned(),
            (Author::Bot, by) => format!("bot {}", by.as_deref().unwrap_or_default()),
            (Author::Agent, by) => format!("agent {}", by.as_deref().unwrap_or_default()),
        };
        let sending = m
            .sending
            .as_ref()
            .map(|s| match &s.last_error {
                Some(e) if s.state != flowhost::messaging::SendState::Sent => {
                    format!("  [{}: {e}]", s.state.as_str())
                }
                _ => format!("  [{}]", s.state.as_str()),
            })
            .unwrap_or_default();
        println!(
            "{} {:<9} {:<14} {}{sending}",
            crate::output::format_ms(m.at),
            m.channel,
            who.trim(),
            m.text.replace('\n', " / ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
