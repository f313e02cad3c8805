//! `flowhost flows list | status FLOW STATUS`.

use crate::setup;
use flowhost::config::OperatorConfig;
use flowhost::flow::FlowStatus;
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List deployed flows with their status and entry points.
    List,
    /// Change a flow's status: draft -> active -> finished; active <-> paused; or canceled.
    Status {
        /// Flow id.
        flow: String,
        /// New status.
        #[arg(value_parser = ["draft", "active", "paused", "finished", "canceled"])]
        status: String,
    },
    /// "Update chatbot sender": give each Start chatbot element the sender of the Evaluate
    /// inbound message element before it, and deploy the result as a new version.
    UpdateChatbotSender {
        /// Flow id.
        flow: String,
    },
}

pub async fn run(command: Command, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let runtime = setup::runtime(config).await?;
    let engine = runtime.engine();
    match command {
        Command::List => {
            for id in engine.flow_ids() {
                let def = engine.flow_def(&id)?;
                let entries: Vec<&str> = def.entry_points.iter().map(|e| e.kind.as_str()).collect();
                println!(
                    "{id:<24} {:<9} {:>3} elements  entry: {}",
                    def.status.as_str(),
                    def.elements.len(),
                    entries.join(", ")
                );
            }
        }
        Command::Status { flow, status } => {
            let status: FlowStatus = serde_json::from_value(json!(status))?;
            if let Err(e) = engine.set_flow_status(&flow, status).await {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
            println!("flow {flow:?} is {}", status.as_str());
        }
        Command::UpdateChatbotSender { flow } => {
            let mut def = engine.flow_def(&flow)?;
            let changes = flowhost::messaging::elements::update_chatbot_senders(&mut def);
            if changes.is_empty() {
                println!("flow {flow:?}: every chatbot sender already matches; nothing changed");
                return Ok(ExitCode::SUCCESS);
            }
            let source = format!("flow {flow:?}");
            let Some(deployed) =
                crate::output::reported(&source, engine.deploy(def, &source).await)
            else {
                return Ok(ExitCode::FAILURE);
            };
            for c in &changes {
                println!(
                    "element {:?}: chatbot sender {:?} -> {:?}",
                    c.element, c.from, c.to
                );
            }
            println!("flow {flow:?} deployed as version {}", deployed.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}
