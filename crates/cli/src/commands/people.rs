//! `flowhost people add JSON | get ID-OR-CONTACT | define NAME TYPE`.

use crate::setup;
use anyhow::Context;
use flowhost::config::OperatorConfig;
use flowhost::person::{AttributeType, People, Person};
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a profile: {"phones": [...], "emails": [...], "attributes": {...}}.
    Add {
        /// The profile as JSON.
        person: String,
    },
    /// Show a profile by id or contact (phone number or email).
    Get {
        /// Id, phone number or email.
        who: String,
    },
    /// Declare a custom attribute and its type.
    Define {
        /// Attribute name.
        name: String,
        /// text, number, boolean, date or list.
        #[arg(value_parser = ["text", "number", "boolean", "date", "list"])]
        kind: String,
    },
}

pub async fn run(command: Command, config: OperatorConfig) -> anyhow::Result<ExitCode> {
    let store = setup::store(&config).await?;
    let people = People::new(store.as_ref());
    match command {
        Command::Add { person } => {
            let person: Person = serde_json::from_str(&person).context(
                "expected JSON like {\"phones\": [\"+385911234567\"], \"attributes\": {\"firstName\": \"Ada\"}}",
            )?;
            let person = people.create(person).await?;
            println!("{}", serde_json::to_string(&person)?);
        }
        Command::Get { who } => {
            let person = setup::find_person(store.as_ref(), &who).await?;
            println!("{}", serde_json::to_string(&person)?)
        }
        Command::Define { name, kind } => {
            let ty: AttributeType = serde_json::from_value(json!(kind))?;
            people.define_attribute(&name, ty).await?;
            println!("attribute {name:?} is {kind}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
