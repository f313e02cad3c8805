//! `flowhost journey PARTICIPANT`: a participant's state and every step it took.

use crate::output::print_participant;
use crate::setup;
use flowhost::config::OperatorConfig;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Participant id.
    participant: String,
    /// Print as JSON lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let runtime = setup::runtime(config).await?;
    let p = runtime.engine().participant(&args.participant).await?;
    print_participant(runtime.engine(), &p, args.json).await?;
    Ok(ExitCode::SUCCESS)
}
