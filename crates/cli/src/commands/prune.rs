//! `flowhost prune`: remove what `[retention]` no longer keeps, once (`flowhost serve` does it
//! every `[retention] every_ms`).

use flowhost::clock::{Clock, SystemClock};
use flowhost::config::OperatorConfig;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let store = flowhost::runtime::open_store(&config).await?;
    let pruned =
        flowhost::retention::prune(store.as_ref(), SystemClock.now_ms(), &config.retention).await?;
    if args.json {
        println!("{}", serde_json::to_string(&pruned)?);
    } else {
        println!(
            "pruned {} finished participants with their journeys, {} messages, {} closed conversations, {} ended chatbot sessions, {} idempotency keys",
            pruned.participants,
            pruned.messages,
            pruned.conversations,
            pruned.sessions,
            pruned.idempotency_keys
        );
    }
    Ok(ExitCode::SUCCESS)
}
