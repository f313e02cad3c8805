//! `GET /metrics`: Prometheus text. The crates record to the `metrics` facade as they work
//! (steps by flow, element and exit; step, plugin-execution and outbound-request durations;
//! outbound requests by host and status; refused requests; plugin load failures; messages
//! sent to people by channel and result), and this
//! module installs the exporter's recorder that keeps them. What is a count of stored state
//! (participants waiting per element, queued per flow, plugins loaded and failed, messages
//! waiting to be sent) is read
//! when scraped.

use crate::AppState;
use crate::problem::Problem;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use flowhost::store::Status;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once; call it
/// before the runtime starts so that nothing recorded is missed. `None` when another
/// recorder was installed first (an embedding application's own): `/metrics` then says so.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    let Some(handle) = install() else {
        return Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process; read the metrics there",
        ));
    };
    let engine = state.engine();
    for flow in engine.flow_ids() {
        for element in engine.analytics(&flow).await? {
            metrics::gauge!(
                "flowhost_participants_waiting",
                "flow" => flow.clone(),
                "element" => element.element_id
            )
            .set(element.counts.waiting as f64);
        }
        let queued = engine
            .store()
            .participants_of(&flow, &[Status::Queued])
            .await?
            .len();
        metrics::gauge!("flowhost_participants_queued", "flow" => flow).set(queued as f64);
    }
    let runtime = state.runtime();
    metrics::gauge!("flowhost_plugins_loaded").set(runtime.plugins().len() as f64);
    metrics::gauge!("flowhost_plugin_files_failed").set(runtime.load_errors().len() as f64);
    metrics::gauge!("flowhost_messages_pending").set(state.outbox().pending().await? as f64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    ))
}
