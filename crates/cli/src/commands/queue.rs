//! `flowhost queue FLOW ELEMENT`: participants queued by a Call API element's sending
//! speed, outside its delivery window, or waiting to retry.

use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::elements::call_api::{WAITING_QUEUED, WAITING_RETRY, WAITING_WINDOW};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Flow id.
    flow: String,
    /// Element id.
    element: String,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let runtime = setup::runtime(config).await?;
    let mut counts = Vec::new();
    for kind in [WAITING_QUEUED, WAITING_WINDOW, WAITING_RETRY] {
        counts.push(
            runtime
                .engine()
                .waiting_count(&args.flow, &args.element, kind)
                .await?,
        );
    }
    println!(
        "{}/{}: {} queued (sending speed), {} outside the delivery window, {} waiting to retry",
        args.flow, args.element, counts[0], counts[1], counts[2]
    );
    Ok(ExitCode::SUCCESS)
}
