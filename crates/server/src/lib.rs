//! `flowhost serve`: the engine as a long-running service. It owns the HTTP API (axum on
//! hyper 1), runs the engine's scheduler continuously, and shuts down without losing
//! anything.
//!
//! - [`Server::new`] takes a started [`Runtime`] (the composition root: store, plugins,
//!   elements, engine) and the `[server]` configuration; [`Server::router`] is the API;
//!   [`Server::run`] serves it on a listener with the scheduler until its shutdown future
//!   completes.
//! - Every endpoint but `/livez` needs an API key (`auth`). Errors are
//!   `application/problem+json` with the failing field or JSON path (`problem`).
//! - Endpoints, one file per area: flows (`flows`), participants (`participants`), People
//!   (`people`), channel webhooks (`inbound`, authenticated by the channel's secret), webhook
//!   chatbots' callbacks (`chatbots`, by the bot's secret), agents' conversations
//!   (`conversations`), the message log and the channels' connectors (`messages`),
//!   `notify_url` callbacks (`notify`), the plugins in use and their hot reload (`plugins`),
//!   Prometheus metrics (`metrics`), liveness and readiness (here).
//!
//! Shutdown: readiness turns 503, the scheduler finishes its round and stops claiming work,
//! requests in flight and participants started by the API get the grace period to finish,
//! then [`Server::run`] returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use flowhost::config::OperatorConfig;
//! use flowhost::runtime::Runtime;
//! use flowhost_server::Server;
//!
//! let config = OperatorConfig::default();
//! let runtime = Runtime::start(config.clone()).await?;
//! runtime.load_saved_flows().await?;
//! let server = Server::new(runtime, &config.server)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.run(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod auth;
mod chatbots;
mod console;
mod conversations;
mod flows;
mod inbound;
mod messages;
pub mod metrics;
mod notify;
mod participants;
mod people;
mod plugins;
pub mod problem;

pub use auth::{ApiKeys, KeyError, hash_key};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use flowhost::config::ServerConfig;
use flowhost::engine::Engine;
use flowhost::engine::scheduler::Scheduler;
use flowhost::runtime::Runtime;
use problem::Problem;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The service: the runtime, its API keys and settings.
pub struct Server {
    state: AppState,
    keys: ApiKeys,
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    runtime: Runtime,
    config: ServerConfig,
    /// Set when shutdown begins: readiness answers 503.
    draining: AtomicBool,
    /// Participants the API added, running in the background.
    runs: std::sync::Mutex<JoinSet<()>>,
    /// Channel webhooks' secrets, and the messages being routed now.
    hooks: inbound::ChannelHooks,
    /// Calls adding participants, limited per second.
    admissions: participants::RateLimit,
    /// Sends bots' and agents' messages through the channels' connectors.
    outbox: flowhost::delivery::Outbox,
    /// Webhook chatbots that may call back, with their secrets.
    bots: chatbots::BotSecrets,
    /// `notify_url` callbacks.
    notifier: Arc<notify::Notifier>,
    /// The latest plugin reloads.
    reloads: plugins::Reloads,
}

impl AppState {
    pub(crate) fn engine(&self) -> &Engine {
        self.inner.runtime.engine()
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    pub(crate) fn hooks(&self) -> &inbound::ChannelHooks {
        &self.inner.hooks
    }

    pub(crate) fn admissions(&self) -> &participants::RateLimit {
        &self.inner.admissions
    }

    pub(crate) fn outbox(&self) -> &flowhost::delivery::Outbox {
        &self.inner.outbox
    }

    pub(crate) fn bots(&self) -> &chatbots::BotSecrets {
        &self.inner.bots
    }

    pub(crate) fn notifier(&self) -> &notify::Notifier {
        &self.inner.notifier
    }

    pub(crate) fn reloads(&self) -> &plugins::Reloads {
        &self.inner.reloads
    }

    /// Runs participants just added, in the background; the scheduler would find them
    /// too, but later.
    pub(crate) fn run_soon(&self, ids: Vec<String>) {
        let engine = self.engine().clone();
        let outbox = self.outbox().clone();
        let mut runs = self.inner.runs.lock().unwrap_or_else(|e| e.into_inner());
        while runs.try_join_next().is_some() {}
        runs.spawn(async move {
            if let Err(e) = engine.follow_up(ids).await {
                tracing::error!(error = %e, "running added participants; the scheduler retries them");
            }
            // A bot may have greeted someone.
            outbox.nudge();
        });
    }
}

impl Server {
    /// A service over `runtime`; fails when the API keys cannot be used.
    pub fn new(runtime: Runtime, config: &ServerConfig) -> Result<Self, KeyError> {
        metrics::install();
        let keys = ApiKeys::from_config(&config.api_keys)?;
        let hooks = inbound::ChannelHooks::from_config(&config.channels)?;
        let outbox = messages::outbox(runtime.engine(), runtime.client(), &config.channels)?;
        let bots = chatbots::BotSecrets::from_config(&config.chatbots)?;
        let notifier = Arc::new(notify::Notifier::new(
            runtime.engine().clone(),
            runtime.client().clone(),
            &config.notify,
        ));
        Ok(Server {
            state: AppState {
                inner: Arc::new(Shared {
                    runtime,
                    config: config.clone(),
                    draining: AtomicBool::new(false),
                    runs: Default::default(),
                    hooks,
                    admissions: participants::rate_limit(config.participant_calls_per_second),
                    outbox,
                    bots,
                    notifier,
                    reloads: Default::default(),
                }),
            },
            keys,
        })
    }

    /// The runtime it serves.
    pub fn runtime(&self) -> &Runtime {
        &self.state.inner.runtime
    }

    /// The HTTP API.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::metrics))
            .route("/v1/flows", post(flows::deploy).get(flows::list))
            .route("/v1/flows/{id}", get(flows::get))
            .route("/v1/flows/{id}/status", put(flows::set_status))
            .route("/v1/flows/{id}/analytics", get(flows::analytics))
            .route(
                "/v1/flows/{id}/participants/move",
                post(flows::move_participants),
            )
            .route(
                "/v1/flows/{id}/chatbot-sender",
                post(flows::update_chatbot_sender),
            )
            .route(
                "/v1/flows/{id}/participants",
                post(participants::add).get(participants::list),
            )
            .route("/v1/participants", get(participants::of_person))
            .route("/v1/participants/{id}", get(participants::get))
            .route("/v1/participants/{id}/journey", get(participants::journey))
            .route("/v1/people", post(people::create).get(people::find))
            .route("/v1/people/{id}", get(people::get).put(people::replace))
            .route("/v1/conversations", get(conversations::list))
            .route("/v1/conversations/{id}", get(conversations::get))
            .route("/v1/conversations/{id}/assign", post(conversations::assign))
            .route("/v1/conversations/{id}/replies", post(conversations::reply))
            .route("/v1/conversations/{id}/close", post(conversations::close))
            .route("/v1/plugins", get(plugins::list))
            .route("/v1/messages", get(messages::list))
            .route("/v1/messages/{id}", get(messages::get))
            .route_layer(axum::middleware::from_fn_with_state(
                self.keys.clone(),
                auth::require_key,
            ));
        Router::new()
            .route("/livez", get(livez))
            // The console's files; its data comes from the API above, with a key.
            .route("/console", get(console::redirect))
            .route("/console/", get(console::index))
            .route("/console/{file}", get(console::asset))
            // Channel webhooks and chatbots prove themselves with their own secrets instead
            // of a key.
            .route("/v1/channels/{channel}/messages", post(inbound::receive))
            .route(
                "/v1/chatbots/{bot}/sessions/{session}/events",
                post(chatbots::report),
            )
            .merge(api)
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(
                self.state.inner.config.max_body_bytes,
            ))
            .with_state(self.state.clone())
    }

    /// Serves the API on `listener` and runs the scheduler until `shutdown` completes, then
    /// drains: readiness 503, no new work claimed, requests and runs in flight get the
    /// grace period (`[server] grace_period_ms`) to finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let config = &self.state.inner.config;
        let grace = Duration::from_millis(config.grace_period_ms);
        let (stop, stopping) = watch::channel(false);
        let scheduler = Scheduler::new(
            self.state.engine().clone(),
            Duration::from_millis(config.scheduler_every_ms),
        )
        // Counted, not kept: a round may resume a million participants.
        .keep_states(false);
        let mut scheduler_stop = stopping.clone();
        let outbox = self.state.outbox().clone();
        let scheduler = tokio::spawn(scheduler.run(
            async move {
                let _ = scheduler_stop.wait_for(|s| *s).await;
            },
            move |round| {
                if round.count > 0 {
                    tracing::debug!(resumed = round.count, "scheduler round");
                    // A session that timed out, or a participant that went on, may have
                    // written to someone.
                    outbox.nudge();
                }
            },
        ));
        let mut watch_stop = stopping.clone();
        let watcher = tokio::spawn(plugins::watch(
            self.state.clone(),
            Duration::from_millis(config.plugin_rescan_ms),
            async move {
                let _ = watch_stop.wait_for(|s| *s).await;
            },
        ));
        let mut notify_stop = stopping.clone();
        let notifier = tokio::spawn(self.state.inner.notifier.clone().run(
            Duration::from_millis(config.scheduler_every_ms),
            async move {
                let _ = notify_stop.wait_for(|s| *s).await;
            },
        ));
        let mut outbox_stop = stopping.clone();
        let sender = tokio::spawn(self.state.outbox().clone().run(
            Duration::from_millis(config.scheduler_every_ms),
            async move {
                let _ = outbox_stop.wait_for(|s| *s).await;
            },
        ));
        let mut prune_stop = stopping.clone();
        let pruner = tokio::spawn(prune(self.state.clone(), async move {
            let _ = prune_stop.wait_for(|s| *s).await;
        }));
        let mut http_stop = stopping.clone();
        let router = self.router();
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!("serving");
        shutdown.await;
        tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down");
        self.state.inner.draining.store(true, Ordering::SeqCst);
        let _ = stop.send(true);
        let runs = std::mem::take(
            &mut *self
                .state
                .inner
                .runs
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let drained = tokio::time::timeout(grace, async {
            let _ = scheduler.await;
            let served = http.await;
            let _ = sender.await;
            let _ = notifier.await;
            let _ = watcher.await;
            let _ = pruner.await;
            runs.join_all().await;
            served
        })
        .await;
        match drained {
            Ok(Ok(served)) => served?,
            Ok(Err(panicked)) => return Err(std::io::Error::other(panicked)),
            Err(_) => tracing::warn!(
                "the grace period ended with work in flight; participants cut off mid-run are taken over when their leases expire (lease_ms); raise [server] grace_period_ms"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `GET /livez`: the process answers. No key needed.
async fn livez() -> impl IntoResponse {
    axum::Json(json!({ "status": "live" }))
}

/// `GET /readyz`: 200 when the store answers, every deployed flow with participants to run
/// builds on this node (its plugins folder has what they name), and the service is not
/// shutting down; 503 otherwise, with the reason.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let shared = &state.inner;
    let plugins = shared.runtime.plugins().len();
    let failed = shared.runtime.load_errors().len();
    let unbuilt: Vec<_> = state
        .engine()
        .unbuilt_flows()
        .into_iter()
        .filter(|f| f.still_runs())
        .collect();
    let problem = if shared.draining.load(Ordering::SeqCst) {
        Some("shutting down".to_owned())
    } else if let Err(e) = state.engine().store().flows().await {
        Some(format!("the store does not answer: {e}"))
    } else {
        unbuilt.first().map(|f| {
            format!(
                "{} deployed flow(s) cannot run on this node, first {:?} version {}: {}; give this node the plugins the flow names (the same files as the other nodes' plugins folders)",
                unbuilt.len(),
                f.flow,
                f.version,
                f.reason
            )
        })
    };
    let status = match problem {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (
        status,
        axum::Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
            "problem": problem,
            "plugins": { "loaded": plugins, "failed": failed },
            "unbuilt_flows": unbuilt,
        })),
    )
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint; see docs/api.md for the API")
}

/// Removes what `[retention]` no longer keeps, every `[retention] every_ms`, until `stop`.
async fn prune(state: AppState, stop: impl Future<Output = ()>) {
    let runtime = state.runtime();
    let retention = runtime.config().retention.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(retention.every_ms.max(1_000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let engine = runtime.engine();
        match flowhost::retention::prune(engine.store(), engine.now(), &retention).await {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(?pruned, "pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; trying again later"),
        }
    }
}
