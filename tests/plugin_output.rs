//! What a plugin hands back is bounded: each way of handing back too much, or of failing, ends
//! on the error exit with a reason that says why in plain words, and what the SQLite file
//! stores for the step stays small. Runs `tests/plugins/hostile-output` in a flow, by mode.

use flowhost::clock::ManualClock;
use flowhost::config::{LimitOverrides, OperatorConfig, PluginGrant};
use flowhost::engine::Engine;
use flowhost::flow::FlowDef;
use flowhost::person::Person;
use flowhost::store::{JourneyEntry, SqliteStore, Status};
use flowhost_tests::components as c;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes a journey row may take for one failed step of this plugin: reasons, previews, the
/// backtrace line and the log together.
const SMALL: i64 = 16 * 1024;

struct Setup {
    engine: Engine,
    database: PathBuf,
}

async fn setup(dir: &Path) -> Setup {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(c::HOSTILE_OUTPUT, plugins.join("hostile.wasm")).unwrap();
    let mut config = OperatorConfig {
        plugins_dir: plugins,
        cache_dir: dir.join("cache"),
        database: dir.join("state.db"),
        ..OperatorConfig::default()
    };
    // Room to build what it hands back: the limits under test are the output limits.
    config.plugins.insert(
        "hostile-output".into(),
        PluginGrant {
            limits: LimitOverrides {
                memory_mib: Some(512),
                deadline_ms: Some(20_000),
                ..LimitOverrides::default()
            },
            ..PluginGrant::default()
        },
    );
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let (registry, errors) = host.load_dir().await;
    assert!(errors.is_empty(), "{errors:?}");
    let store = Arc::new(SqliteStore::open(&config.database).unwrap());
    let types = flowhost::elements::builtins(store.clone())
        .with_plugins(host, flowhost::plugin::PluginSet::new(registry));
    let engine = Engine::new(store, Arc::new(ManualClock::new(0)), types);
    Setup {
        engine,
        database: config.database,
    }
}

struct Run {
    status: Status,
    variables: BTreeMap<String, Value>,
    step: JourneyEntry,
    /// Bytes of the step's journey row and of the participant's stored variables.
    row_bytes: i64,
    variables_bytes: i64,
}

impl Run {
    fn reason(&self) -> &str {
        self.step.error.as_deref().unwrap_or_default()
    }

    fn log(&self) -> Vec<&str> {
        self.step.logs.iter().map(|l| l.message.as_str()).collect()
    }
}

/// Runs the plugin in `mode` for a participant that carries one variable, in a flow whose
/// `error` exit sets `failed` and whose `done` exit sets `finished`.
async fn run(s: &Setup, mode: &str) -> Run {
    let flow = json!({
        "id": mode, "name": mode,
        "entry_points": [{"type": "api", "start": "h"}],
        "elements": [
            {"id": "h", "type": "plugin:hostile-output", "config": {"mode": mode},
             "exits": {"done": "finished", "error": "failed"}},
            {"id": "finished", "type": "set-variable", "config": {"set": {"finished": true}}},
            {"id": "failed", "type": "set-variable", "config": {"set": {"failed": true}}}
        ]
    });
    let flow = FlowDef::parse(&flow.to_string(), "hostile.json").unwrap();
    s.engine.deploy(flow, "hostile.json").await.unwrap();
    let person = Person {
        id: format!("p-{mode}"),
        ..Person::default()
    };
    let vars = BTreeMap::from([("kept".to_owned(), json!("yes"))]);
    let p = s.engine.start(mode, person, vars).await.unwrap();
    let journey = s.engine.journey(&p.id).await.unwrap();
    let db = rusqlite::Connection::open(&s.database).unwrap();
    let row_bytes = db
        .query_row(
            "SELECT max(length(entry)) FROM journey WHERE participant_id = ?1",
            [&p.id],
            |r| r.get(0),
        )
        .unwrap();
    let variables_bytes = db
        .query_row(
            "SELECT length(variables) FROM participants WHERE id = ?1",
            [&p.id],
            |r| r.get(0),
        )
        .unwrap();
    Run {
        status: p.status,
        variables: p.variables,
        step: journey[0].clone(),
        row_bytes,
        variables_bytes,
    }
}

/// The step left by `error`, stored small, with the participant's variables as they were.
fn failed(run: &Run, mode: &str) {
    assert_eq!(
        run.step.exit.as_deref(),
        Some("error"),
        "{mode}: {:?}",
        run.step
    );
    assert_eq!(run.status, Status::Completed, "{mode}");
    assert_eq!(run.variables["failed"], json!(true), "{mode}");
    assert_eq!(run.variables["kept"], json!("yes"), "{mode}");
    assert!(run.step.variables_changed.is_empty(), "{mode}");
    assert!(
        run.row_bytes < SMALL,
        "{mode}: the journey row holds {} bytes",
        run.row_bytes
    );
    assert!(
        run.variables_bytes < 200,
        "{mode}: {} bytes of variables",
        run.variables_bytes
    );
}

#[tokio::test]
async fn too_much_output_ends_on_error_naming_the_limit_and_stores_little() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;

    let r = run(&s, "long-exit").await;
    failed(&r, "long-exit");
    assert!(
        r.reason().starts_with("exit id: 31457280 bytes, over limits.max_exit_bytes = 128; the operator can raise it in flowhost.toml; it begins \"xxxx"),
        "{}",
        r.reason()
    );

    let r = run(&s, "long-error").await;
    failed(&r, "long-error");
    assert!(
        r.reason().starts_with("plugin error: eeee"),
        "{}",
        r.reason()
    );
    assert!(
        r.reason().ends_with(
            "… [cut at limits.max_error_bytes = 4096 of 31457280 bytes; the operator can raise it in flowhost.toml]"
        ),
        "{}",
        &r.reason()[r.reason().len() - 200..]
    );

    let r = run(&s, "big-data").await;
    failed(&r, "big-data");
    assert!(
        r.reason()
            .starts_with("outcome data: 41943051 bytes, over limits.max_data_bytes = 65536;"),
        "{}",
        r.reason()
    );
    assert_eq!(r.step.data, None);

    let r = run(&s, "many-variables").await;
    failed(&r, "many-variables");
    assert_eq!(
        r.reason(),
        "variables set in one execution: 101 variables, over limits.max_variables_set = 100; the operator can raise it in flowhost.toml"
    );

    let r = run(&s, "big-variable").await;
    failed(&r, "big-variable");
    assert_eq!(
        r.reason(),
        "variable `big`: 2097157 bytes, over limits.max_variable_bytes = 1048576; the operator can raise it in flowhost.toml"
    );

    // Four of 900 KiB fit in 4 MiB; the fifth does not.
    let r = run(&s, "heavy-variables").await;
    failed(&r, "heavy-variables");
    assert!(
        r.reason().starts_with(
            "all variables of the participant: 4608029 bytes, over limits.max_variables_bytes = 4194304;"
        ),
        "{}",
        r.reason()
    );
}

#[tokio::test]
async fn floods_of_output_are_cut_and_the_element_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    for mode in ["stdout-flood", "log-flood"] {
        let r = run(&s, mode).await;
        assert_eq!(
            r.step.exit.as_deref(),
            Some("done"),
            "{mode}: {:?}",
            r.step.error
        );
        assert_eq!(r.variables["finished"], json!(true));
        // The kept lines plus the notes: the 64 KiB of limits.max_log_bytes, with room for
        // the JSON around them.
        assert!(
            r.row_bytes < 80 * 1024,
            "{mode}: the journey row holds {} bytes",
            r.row_bytes
        );
        let log = r.log();
        assert!(
            log.iter().any(|l| l.contains("more log lines dropped (the limits are 200 lines and limits.max_log_bytes = 65536 per execution)")),
            "{mode}: {:?}",
            &log[log.len().saturating_sub(3)..]
        );
    }
    let r = run(&s, "stdout-flood").await;
    let log = r.log();
    assert_eq!(log[0], "[stdout] line 0 of a flood nobody will read");
    assert!(
        log.iter().any(|l| l.starts_with("[stdout] ")
            && l.ends_with(" more bytes not kept (limits.max_log_bytes = 65536)")),
        "{:?}",
        &log[log.len() - 3..]
    );
}

#[tokio::test]
async fn failures_say_why_in_words_with_the_backtrace_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;

    let r = run(&s, "own-stack-overflow").await;
    failed(&r, "own-stack-overflow");
    assert!(
        r.reason().starts_with("most likely a stack overflow in the plugin's own stack: memory was accessed out of bounds deep in a recursion of "),
        "{}",
        r.reason()
    );
    let log = r.log();
    let backtrace = log.last().unwrap();
    assert!(backtrace.starts_with("wasm backtrace: #0 "), "{log:?}");
    assert!(!r.reason().contains("backtrace"), "{}", r.reason());

    let r = run(&s, "panic").await;
    failed(&r, "panic");
    assert!(
        r.reason().starts_with("plugin panicked at ")
            && r.reason().ends_with(": the order API answered nonsense"),
        "{}",
        r.reason()
    );
    assert!(r.log().last().unwrap().starts_with("wasm backtrace: "));

    let r = run(&s, "bad-json-variable").await;
    failed(&r, "bad-json-variable");
    assert!(
        r.reason().starts_with(
            "plugin misused a host call: variables.set: value.json is not valid JSON ("
        ),
        "{}",
        r.reason()
    );
}
