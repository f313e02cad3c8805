//! `flowhost analytics FLOW`: per element, participants entered, left per exit, waiting now.

use crate::output::print_analytics;
use crate::setup;
use flowhost::config::OperatorConfig;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Flow id.
    flow: String,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let runtime = setup::runtime(config).await?;
    let rows = runtime.engine().analytics(&args.flow).await?;
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        print_analytics(&rows);
    }
    Ok(ExitCode::SUCCESS)
}
