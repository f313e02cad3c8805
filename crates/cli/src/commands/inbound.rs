//! `flowhost inbound --channel C --from CONTACT --to SENDER TEXT`: route one message a
//! person sent, and say where it went.

use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::messaging::{Channel, InboundMessage};
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let channel: Channel = serde_json::from_value(json!(args.channel)).map_err(|_| {
        anyhow::anyhow!(
            "--channel {:?}: use sms, whatsapp, viber, rcs, telegram, messenger or email",
            args.channel
        )
    })?;
    let runtime = setup::runtime(config).await?;
    let engine = runtime.engine();
    let delivery = runtime
        .inbound()
        .receive(InboundMessage {
            channel,
            from: args.from,
            to: args.to,
            text: args.text,
            received_at: None,
        })
        .await?;
    engine.finish_background().await;
    println!("{}", serde_json::to_string(&delivery)?);
    Ok(ExitCode::SUCCESS)
}
