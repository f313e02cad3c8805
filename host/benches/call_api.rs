//! Call API throughput against a bare hyper client, to the same local server, in one run.
//!
//! Run with `./dev bench` (or `cargo bench -p flowhost --bench call_api`). Figures and the
//! machine go in docs/BENCHMARKS.md; criterion prints requests/s as `elem/s`.
//!
//! - `call-api/bare-hyper`: hyper-util's pooled client: GET, read the whole body.
//! - `call-api/element`: the Call API element's step: render the URL template, check the
//!   outbound policy, send through the pooled client (name resolution and address check on
//!   new connections), read the body under the size cap, map one JSONPath into a variable,
//!   choose the exit, redact secrets.
//! - `call-api/send-buffered`: the outbound layer alone (policy check, pooled client, capped
//!   body read), without the element around it.
//! - `call-api/element-8-concurrent` and `bare-hyper-8-concurrent`: 8 requests in flight.
//! - `call-api/engine-step`: a participant through a flow of one Call API element and an
//!   exit, with the SQLite writes after each step.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowhost::clock::SystemClock;
use flowhost::config::{CallApiConfig, OutboundConfig};
use flowhost::elements::{Element, StepInput, StepOutcome};
use flowhost::engine::Engine;
use flowhost::flow::{ElementDef, FlowDef};
use flowhost::outbound::HttpClient;
use flowhost::person::Person;
use flowhost::store::SqliteStore;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const BODY: &str = r#"{"order": {"id": "1001", "status": "shipped"}, "loyalty": {"points": 120}}"#;

fn benches(crit: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(flowhost_tests::TestServer::start(|_| {
        (200, "application/json", BODY.to_owned())
    }));
    let url = format!("{}/orders/1001", server.url());

    let bare: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let bare_get = |bare: Client<HttpConnector, Full<Bytes>>, uri: http::Uri| async move {
        let response = bare.get(uri).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), BODY.len());
    };

    let client = HttpClient::new(&OutboundConfig {
        allow_private: vec!["127.0.0.1".into()],
        ..OutboundConfig::default()
    })
    .unwrap();
    let policy = flowhost::outbound::OutboundPolicy {
        subject: "bench".into(),
        declared: None,
        granted: vec![flowhost::outbound::HostPattern::parse("*").unwrap()],
        max_requests: u32::MAX,
        max_response_bytes: 1 << 20,
    };
    let send = |client: HttpClient, policy: &flowhost::outbound::OutboundPolicy, url: String| {
        let policy = policy.clone();
        async move {
            let r = flowhost::outbound::send_buffered(
                &client,
                &policy,
                flowhost::outbound::BufferedRequest {
                    method: "GET".into(),
                    url,
                    headers: vec![],
                    body: None,
                    timeout: std::time::Duration::from_secs(10),
                    max_redirects: 5,
                },
            )
            .await
            .unwrap();
            assert_eq!(r.body.len(), BODY.len());
        }
    };
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let types = flowhost::elements::builtins(store)
        .with_call_api(client.clone(), &CallApiConfig::default())
        .unwrap();
    let def: ElementDef = serde_json::from_value(json!({
        "id": "call", "type": "call-api",
        "config": {"url": format!("{}/orders/{{{{order_id}}}}", server.url()),
                   "response": {"body": {"points": "$.loyalty.points"}}},
        "exits": {"2xx": "done", "error": "done"}
    }))
    .unwrap();
    let (_, ty) = types.types().resolve("call-api").unwrap();
    let element: Arc<dyn Element> =
        Arc::from(ty.build(&def).map_err(|e| format!("{e:?}")).unwrap());
    let person = Arc::new(Person::default());
    let variables = Arc::new(BTreeMap::from([("order_id".to_owned(), json!("1001"))]));
    let step = |element: Arc<dyn Element>| {
        let (person, variables) = (person.clone(), variables.clone());
        async move {
            let (person, variables) = (&*person, &*variables);
            let r = element
                .run(StepInput {
                    flow_id: "f",
                    element_id: "call",
                    participant_id: "p",
                    person,
                    variables,
                    now: 0,
                    resumed: false,
                    state: None,
                    event: None,
                    flows: &flowhost::elements::NoFlows,
                    step: 1,
                })
                .await;
            assert_eq!(r.outcome, StepOutcome::Exit("2xx".into()), "{r:?}");
            assert_eq!(r.set["points"], Value::from(120));
        }
    };

    let mut group = crit.benchmark_group("call-api");
    group.throughput(Throughput::Elements(1));
    let uri: http::Uri = url.parse().unwrap();
    // Every iteration runs as a task on the runtime's workers, as engine steps do in a
    // server; polling from the bench thread would add cross-thread wake-ups to both sides.
    group.bench_function("bare-hyper", |b| {
        b.to_async(&rt)
            .iter(|| on_worker(bare_get(bare.clone(), uri.clone())))
    });
    group.bench_function("element", |b| {
        b.to_async(&rt).iter(|| on_worker(step(element.clone())))
    });
    group.bench_function("send-buffered", |b| {
        b.to_async(&rt)
            .iter(|| on_worker(send(client.clone(), &policy, url.clone())))
    });
    group.throughput(Throughput::Elements(8));
    group.bench_function("bare-hyper-8-concurrent", |b| {
        b.to_async(&rt).iter(|| {
            let runs: Vec<_> = (0..8)
                .map(|_| bare_get(bare.clone(), uri.clone()))
                .collect();
            on_worker(futures_join_all(runs.into_iter()))
        })
    });
    group.bench_function("element-8-concurrent", |b| {
        b.to_async(&rt).iter(|| {
            let runs: Vec<_> = (0..8).map(|_| step(element.clone())).collect();
            on_worker(futures_join_all(runs.into_iter()))
        })
    });
    group.bench_function("send-buffered-8-concurrent", |b| {
        b.to_async(&rt).iter(|| {
            let runs: Vec<_> = (0..8)
                .map(|_| send(client.clone(), &policy, url.clone()))
                .collect();
            on_worker(futures_join_all(runs.into_iter()))
        })
    });
    group.finish();

    let engine = Engine::new(
        Arc::new(SqliteStore::in_memory().unwrap()),
        Arc::new(SystemClock),
        types,
    );
    let flow = json!({"id": "bench", "name": "bench", "entry_points": [{"type": "api", "start": "call"}],
                      "elements": [def, {"id": "done", "type": "exit"}]});
    rt.block_on(engine.deploy(
        FlowDef::parse(&flow.to_string(), "bench.json").unwrap(),
        "bench.json",
    ))
    .unwrap();
    crit.bench_function("call-api/engine-step", |b| {
        b.to_async(&rt).iter(|| async {
            let engine = engine.clone();
            let variables = (*variables).clone();
            on_worker(async move {
                let p = engine
                    .start("bench", Person::default(), variables)
                    .await
                    .unwrap();
                assert_eq!(p.variables["points"], Value::from(120));
            })
            .await
        })
    });
}

async fn on_worker(work: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(work).await.unwrap();
}

/// Runs futures concurrently within one task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

criterion_group!(call_api, benches);
criterion_main!(call_api);
