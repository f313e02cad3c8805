//! `flowhost run FLOW.json`: deploy a flow and run one participant until the flow ends or
//! waits.

use crate::output::{print_participant, reported};
use crate::setup;
use anyhow::Context;
use flowhost::config::OperatorConfig;
use flowhost::flow::{EntryKind, FlowDef};
use flowhost::person::Person;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Flow definition (JSON).
    flow: PathBuf,
    /// The person, as JSON: {"id": "...", "emails": [...], "attributes": {...}}.
    #[arg(long, conflicts_with = "person_id")]
    person: Option<String>,
    /// A person kept in People, by id or contact (see `flowhost people`).
    #[arg(long)]
    person_id: Option<String>,
    /// A flow variable, `name=value`; the value is JSON when it parses, else text.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Print the journey as JSON lines.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let def = FlowDef::load(&args.flow)?;
    let name = args.flow.display().to_string();
    if !def.entry_points.iter().any(|e| e.kind == EntryKind::Api) {
        // Refused before anything is deployed.
        let ways: Vec<&str> = def
            .entry_points
            .iter()
            .map(|e| match e.kind {
                EntryKind::InboundMessage => {
                    "an inbound-message entry point: deploy it with `flowhost deploy` and send it a message with `flowhost inbound`"
                }
                EntryKind::ExistingFlow | EntryKind::Api => {
                    "an existing-flow entry point: deploy it with `flowhost deploy`; Add to Flow elements enter people into it"
                }
            })
            .collect();
        eprintln!(
            "{name}: flow {:?} has no api entry point, so `flowhost run` cannot start anyone in it; it has {}",
            def.id,
            if ways.is_empty() {
                "no entry point at all".to_owned()
            } else {
                ways.join(", and ")
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    let variables = setup::parse_vars(&args.vars).context("--var")?;
    let runtime = setup::runtime(config).await?;
    let engine = runtime.engine();
    let person: Person = match (args.person, args.person_id) {
        (Some(text), _) => serde_json::from_str(&text).context(
            "--person: expected JSON like {\"id\": \"p1\", \"emails\": [\"a@b.c\"], \"attributes\": {}}",
        )?,
        (None, Some(who)) => setup::find_person(engine.store(), &who)
            .await
            .context("--person-id")?,
        (None, None) => Person {
            id: "cli-person".into(),
            ..Person::default()
        },
    };
    let flow_id = def.id.clone();
    if reported(&name, engine.deploy(def, &name).await).is_none() {
        return Ok(ExitCode::FAILURE);
    }
    let p = engine.start(&flow_id, person, variables).await?;
    // Requests sent without waiting finish before the journey is printed.
    engine.finish_background().await;
    print_participant(engine, &p, args.json).await?;
    Ok(ExitCode::SUCCESS)
}
