//! What most commands need first: the operator's configuration, the runtime built from it
//! (with what failed to load reported on stderr), or only the store.

use anyhow::bail;
use flowhost::config::OperatorConfig;
use flowhost::person::{Contact, People, Person};
use flowhost::runtime::{Runtime, open_store};
use flowhost::store::StateStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// `--config`, else `./flowhost.toml` when present, else the defaults.
pub fn operator_config(path: Option<&Path>) -> anyhow::Result<OperatorConfig> {
    match path {
        Some(p) => Ok(OperatorConfig::load(p)?),
        None if Path::new("flowhost.toml").is_file() => {
            Ok(OperatorConfig::load(Path::new("flowhost.toml"))?)
        }
        None => Ok(OperatorConfig::default()),
    }
}

/// The runtime with the flows deployed in the database loaded, for every command that runs
/// participants or reports on flows: they all see the same deployed flows (an Add to Flow
/// element run from `flowhost run` finds its target as `flowhost inbound` does). Plugin files
/// and saved flows that fail to load are reported on stderr; the rest load.
pub async fn runtime(config: OperatorConfig) -> anyhow::Result<Runtime> {
    let runtime = Runtime::start(config).await?;
    report_load_errors(&runtime);
    for e in runtime.load_saved_flows().await? {
        eprintln!("warning: {e}");
    }
    Ok(runtime)
}

/// The runtime for checking a flow, with the deployed flows to check Add to Flow targets
/// against; it creates no database (see [`Runtime::start_for_checks`]).
pub async fn check_runtime(config: OperatorConfig) -> anyhow::Result<Runtime> {
    let runtime = Runtime::start_for_checks(config).await?;
    report_load_errors(&runtime);
    // Only read: the flows Add to Flow elements name are checked against them.
    for e in runtime.load_saved_flows().await? {
        eprintln!("warning: {e}");
    }
    Ok(runtime)
}

fn report_load_errors(runtime: &Runtime) {
    for e in runtime.load_errors().iter() {
        eprintln!("warning: {e}");
    }
}

/// Only the store, for commands about people, conversations and chatbots.
pub async fn store(config: &OperatorConfig) -> anyhow::Result<Arc<dyn StateStore>> {
    Ok(open_store(config).await?)
}

/// A person kept in People, by id or by contact.
pub async fn find_person(store: &dyn StateStore, who: &str) -> anyhow::Result<Person> {
    let people = People::new(store);
    if let Some(p) = people.get(who).await? {
        return Ok(p);
    }
    if let Ok(contact) = Contact::guess(who)
        && let Some(p) = people.find(&contact).await?
    {
        return Ok(p);
    }
    bail!("no person with id or contact {who:?}; add one with `flowhost people add`")
}

/// `--var NAME=VALUE` arguments; a value is JSON when it parses, else text.
pub fn parse_vars(vars: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
    vars.iter()
        .map(|kv| {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("{kv:?}: write NAME=VALUE");
            };
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            Ok((k.to_owned(), value))
        })
        .collect()
}
