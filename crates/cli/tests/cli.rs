//! The `flowhost` binary, run as a user would: one test binary (each links wasmtime), its
//! tests by area under `cli/`, each one user session through several commands, sharing the
//! workspace helpers here.

#[path = "cli/console.rs"]
mod console;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/flows.rs"]
mod flows;
#[path = "cli/messaging.rs"]
mod messaging;
#[path = "cli/nodes.rs"]
mod nodes;
#[path = "cli/plugins.rs"]
mod plugins;
#[path = "cli/service.rs"]
mod service;

use flowhost_tests::components as c;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

fn flowhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running flowhost")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::write(
        dir.path().join("flowhost.toml"),
        r#"
plugins_dir = "plugins"
database = "state.db"
cache_dir = "cache"

[outbound]
allow_private = ["127.0.0.1"]

[plugins.happy]
allow_hosts = ["127.0.0.1"]
secrets = { token = "cli-secret" }
"#,
    )
    .unwrap();
    dir
}
