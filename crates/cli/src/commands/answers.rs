//! `flowhost answers enable|disable`: the account's switch for chatbots in flows.

use crate::setup;
use flowhost::answers::Answers;
use flowhost::config::OperatorConfig;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// `enable` or `disable`.
    #[arg(value_parser = ["enable", "disable"])]
    switch: String,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let store = setup::store(&config).await?;
    Answers::set_enabled(store.as_ref(), args.switch == "enable").await?;
    println!("Answers is {}d", args.switch);
    Ok(ExitCode::SUCCESS)
}
