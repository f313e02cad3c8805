//! `flowhost deploy FLOW.json`: validate and save a flow without running anyone.

use crate::output::reported;
use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::flow::FlowDef;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Flow definition (JSON).
    flow: PathBuf,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let def = FlowDef::load(&args.flow)?;
    let runtime = setup::runtime(config).await?;
    let name = args.flow.display().to_string();
    let Some(f) = reported(&name, runtime.engine().deploy(def, &name).await) else {
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "{name}: flow {:?} deployed as version {} ({})",
        f.def.id,
        f.version,
        f.def.status.as_str()
    );
    Ok(ExitCode::SUCCESS)
}
