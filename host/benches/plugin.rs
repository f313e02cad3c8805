//! Plugin execution cost, measured against raw wasmtime in the same run.
//!
//! Run with `./dev bench` (or `cargo bench -p flowhost --bench plugin`). Figures and the
//! machine go in docs/BENCHMARKS.md.
//!
//! - `execute/flowhost`: `PluginHost::execute` of the trivial test plugin: fresh pooled
//!   instance, limits, capability state, WASI context, call, outcome checks.
//! - `execute/raw-wasmtime`: the same component on the same engine, instantiated from an
//!   `InstancePre` into a bare `Store<()>` and its `execute` called, nothing else.
//! - `execute/per-call`: the same two, each call timed on its own; printed as percentiles,
//!   and beside them each call's share of the whole block's time.
//!
//! Each `execute` call is followed by a `yield_now`, as an engine step is by the wait for its
//! commit: `PluginHost::execute` leaves its store to be dropped in a task of its own, which
//! runs then, on the same thread. The `execute` figures and the per-call block share include
//! that task; the per-call percentiles are the step's path, which does not.
//! - `load/compile` vs `load/cache-hit`: compiling a component vs loading it from the AOT
//!   cache.
//! - `other-languages/compile/*` vs `other-languages/second-start/*`: the JavaScript and
//!   Python components compiled, vs a new host loading them from its cache (describe included).
//! - `engine/one-plugin-step`: a participant through a flow of the trivial plugin and an
//!   exit, including the SQLite writes after each step.

use criterion::{Criterion, criterion_group, criterion_main};
use flowhost::clock::SystemClock;
use flowhost::config::OperatorConfig;
use flowhost::engine::Engine;
use flowhost::flow::FlowDef;
use flowhost::person::Person;
use flowhost::plugin::cache::ArtifactCache;
use flowhost::plugin::{Invocation, PluginRegistry};
use flowhost::store::SqliteStore;
use flowhost_tests::components as c;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

mod raw {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "plugin",
        exports: { default: async },
    });
}

fn benches(crit: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = OperatorConfig {
        cache_dir: dir.path().join("cache"),
        plugins_dir: dir.path().join("plugins"),
        ..OperatorConfig::default()
    };
    let host = flowhost::runtime::plugin_host(&config).unwrap();
    let plugin = rt.block_on(host.load_file(Path::new(c::TRIVIAL))).unwrap();
    let invocation = Invocation {
        flow_id: "bench".into(),
        element_id: "e".into(),
        participant_id: "p".into(),
        person: Person::default(),
        config: Vec::new(),
        idempotency_key: None,
    };

    // Raw wasmtime on the same engine: every import a trap (the trivial plugin calls none).
    let engine = host.engine().clone();
    let wasm = std::fs::read(c::TRIVIAL).unwrap();
    let component = Component::from_binary(&engine, &wasm).unwrap();
    let mut linker: Linker<()> = Linker::new(&engine);
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = raw::PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let raw_inv = raw::flowhost::element::types::Invocation {
        flow_id: "bench".into(),
        element_id: "e".into(),
        participant_id: "p".into(),
        person: raw::flowhost::element::types::Person {
            id: String::new(),
            phones: Vec::new(),
            emails: Vec::new(),
            external_id: None,
            attributes: Vec::new(),
        },
        config: Vec::new(),
    };

    // One thread, as an engine step runs on one worker, and the store dropped after the
    // call runs in the yield that follows it.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = || async {
        let run = host.execute(&plugin, &invocation, BTreeMap::new()).await;
        assert!(run.result.is_ok());
    };
    let raw = || async {
        let mut store = Store::new(&engine, ());
        // The engine has epoch interruption on; a bare store needs a deadline too.
        store.set_epoch_deadline(1_000);
        let instance = pre.instantiate_async(&mut store).await.unwrap();
        let out = instance
            .flowhost_element_element()
            .call_execute(&mut store, &raw_inv)
            .await
            .unwrap();
        assert!(out.is_ok());
    };

    let mut group = crit.benchmark_group("execute");
    group.bench_function("flowhost", |b| {
        b.to_async(&current).iter(|| async {
            ours().await;
            tokio::task::yield_now().await;
        })
    });
    group.bench_function("raw-wasmtime", |b| {
        b.to_async(&current).iter(|| async {
            raw().await;
            tokio::task::yield_now().await;
        })
    });
    group.finish();
    current.block_on(per_call_percentiles(ours, raw));

    let mut group = crit.benchmark_group("load");
    group.sample_size(20);
    for (name, path) in [("trivial", c::TRIVIAL), ("order-status", c::ORDER_STATUS)] {
        let wasm = std::fs::read(path).unwrap();
        group.bench_function(format!("compile/{name}"), |b| {
            b.iter(|| Component::from_binary(&engine, &wasm).unwrap())
        });
        let cache = ArtifactCache::new(&dir.path().join("bench-cache"), &engine);
        cache.load_or_compile(&engine, &wasm).unwrap();
        group.bench_function(format!("cache-hit/{name}"), |b| {
            b.iter(|| cache.load_or_compile(&engine, &wasm).unwrap())
        });
    }
    group.finish();

    // JavaScript and Python components (`./dev other-langs` builds them): a compile, and a
    // second start of a host that finds them in its cache.
    let mut group = crit.benchmark_group("other-languages");
    group.sample_size(10);
    for (name, file) in [
        ("js-greeter", "js_greeter.wasm"),
        ("py-greeter", "py_greeter.wasm"),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/other-langs")
            .join(file);
        let Ok(wasm) = std::fs::read(&path) else {
            eprintln!(
                "skipping {name}: {} is missing; run ./dev other-langs",
                path.display()
            );
            continue;
        };
        group.bench_function(format!("compile/{name}"), |b| {
            b.iter(|| Component::from_binary(&engine, &wasm).unwrap())
        });
        let warm = OperatorConfig {
            cache_dir: dir.path().join("other-cache"),
            ..OperatorConfig::default()
        };
        rt.block_on(
            flowhost::runtime::plugin_host(&warm)
                .unwrap()
                .load_file(&path),
        )
        .unwrap();
        group.bench_function(format!("second-start/{name}"), |b| {
            b.iter(|| {
                let host = flowhost::runtime::plugin_host(&warm).unwrap();
                rt.block_on(host.load_file(&path)).unwrap()
            })
        });
    }
    group.finish();

    let mut registry = PluginRegistry::default();
    registry
        .insert(rt.block_on(host.load_file(Path::new(c::TRIVIAL))).unwrap())
        .unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).unwrap());
    let types = flowhost::elements::builtins(store.clone())
        .with_plugins(host.clone(), flowhost::plugin::PluginSet::new(registry));
    let flow_engine = Engine::new(store, Arc::new(SystemClock), types);
    let flow = FlowDef::parse(
        r#"{"id": "b", "name": "B", "entry_points": [{"type": "api", "start": "t"}],
            "elements": [{"id": "t", "type": "plugin:trivial", "exits": {"done": "x"}},
                         {"id": "x", "type": "exit"}]}"#,
        "bench",
    )
    .unwrap();
    rt.block_on(flow_engine.deploy(flow, "bench")).unwrap();
    crit.bench_function("engine/one-plugin-step", |b| {
        b.to_async(&rt).iter(|| async {
            flow_engine
                .start("b", Person::default(), BTreeMap::new())
                .await
                .unwrap()
        })
    });
}

/// Criterion's figures are means over batches of calls, so the freed slots the pooling
/// allocator decommits together every 8 to 11 calls are spread over all of them. This
/// times each call on its own and prints percentiles: the p50 is a typical call, the p90 and
/// p99 the calls that paid for a batch. Ours and raw wasmtime take turns in blocks, so that
/// both see the same load; in blocks rather than call by call, because one side would then
/// fill every batch (each call frees the same number of regions).
async fn per_call_percentiles<A, B>(ours: impl Fn() -> A, raw: impl Fn() -> B)
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    const CALLS: usize = 20_000;
    const BLOCK: usize = 500;
    // Each call timed on its own, then the whole of each block (the yields included).
    let mut times = [(); 2].map(|()| (Vec::with_capacity(CALLS), Duration::ZERO));
    for _ in 0..CALLS / BLOCK {
        for (i, (calls, blocks)) in times.iter_mut().enumerate() {
            let block = Instant::now();
            for _ in 0..BLOCK {
                let t = Instant::now();
                if i == 0 {
                    ours().await
                } else {
                    raw().await
                }
                calls.push(t.elapsed());
                tokio::task::yield_now().await;
            }
            *blocks += block.elapsed();
        }
    }
    println!(
        "execute/per-call ({CALLS} calls each)   p50       p90       p99      mean  all included"
    );
    for (name, (calls, blocks)) in ["flowhost", "raw-wasmtime"].iter().zip(&mut times) {
        calls.sort();
        let at = |q: f64| micros(calls[((calls.len() - 1) as f64 * q) as usize]);
        let mean = micros(calls.iter().sum::<Duration>() / CALLS as u32);
        println!(
            "  {name:<33}{:>6.1} µs {:>6.1} µs {:>6.1} µs {:>6.1} µs {:>8.1} µs",
            at(0.5),
            at(0.9),
            at(0.99),
            mean,
            micros(*blocks / CALLS as u32)
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

criterion_group!(plugin, benches);
criterion_main!(plugin);
