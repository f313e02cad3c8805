//! `flowhost validate FLOW.json`: every problem, one line each, with its JSON path.

use crate::output::reported;
use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::flow::FlowDef;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Flow definition (JSON).
    flow: PathBuf,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let def = FlowDef::load(&args.flow)?;
    let runtime = setup::check_runtime(config).await?;
    let name = args.flow.display().to_string();
    let checked = runtime.engine().compile(def, &name).await.map(Arc::new);
    let Some(f) = reported(&name, checked) else {
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "{name}: flow {:?} is valid ({} elements, {} warnings)",
        f.def.id,
        f.def.elements.len(),
        f.warnings.len()
    );
    Ok(ExitCode::SUCCESS)
}
