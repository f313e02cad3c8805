//! What commands print: journeys, analytics, plugins, and the issues of a checked flow.

use flowhost::engine::{CompiledFlow, ElementAnalytics, Engine};
use flowhost::plugin::LoadedPlugin;
use flowhost::store::{JourneyEntry, ParticipantState};
use serde_json::{Value, json};
use std::sync::Arc;

/// Prints a checked flow's warnings, or its issues (one per line); `None` when it has issues.
pub fn reported<E: std::fmt::Display>(
    name: &str,
    result: Result<Arc<CompiledFlow>, E>,
) -> Option<Arc<CompiledFlow>> {
    match result {
        Ok(flow) => {
            for w in &flow.warnings {
                eprintln!("warning: {name}: {w}");
            }
            Some(flow)
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// The analytics table: per element, entered, waiting and left per exit; under an element
/// that counts more (Start chatbot's sessions and end reasons), those counts.
pub fn print_analytics(rows: &[ElementAnalytics]) {
    println!(
        "{:<20} {:<28} {:>7} {:>7}  EXITS",
        "ELEMENT", "TYPE", "ENTERED", "WAITING"
    );
    for row in rows {
        let exits = pairs(&row.counts.exits);
        println!(
            "{:<20} {:<28} {:>7} {:>7}  {}",
            row.element_id, row.element_type, row.counts.entered, row.counts.waiting, exits
        );
        if !row.counts.details.is_empty() {
            println!("{:<20} {}", "", pairs(&row.counts.details));
        }
    }
}

/// `name=count` pairs, space-separated.
fn pairs(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let pairs: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

/// A plugin as one JSON object.
pub fn plugin_json(p: &LoadedPlugin) -> Value {
    p.summary()
}

/// A plugin as `flowhost plugins inspect` shows it.
pub fn print_plugin(p: &LoadedPlugin, was_cached: bool) {
    let m = &p.manifest;
    println!("{} {} — {}", m.id, m.version, m.name);
    if !m.description.is_empty() {
        println!("  {}", m.description);
    }
    println!("  file:     {} ({} bytes)", p.path.display(), p.size);
    println!("  WIT:      flowhost:element@{}", p.wit_version);
    println!(
        "  cache:    {}",
        if was_cached {
            "cached (no compile needed)".to_owned()
        } else {
            p.cache.to_string()
        }
    );
    println!(
        "  exits:    {}",
        m.exits
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  config:");
    for f in &m.config {
        println!(
            "    {:<20} {:<8} {}{}{}",
            f.name,
            f.kind.name(),
            if f.required { "required" } else { "optional" },
            if f.secret {
                ", secret (set by the operator)"
            } else {
                ""
            },
            f.default
                .as_ref()
                .map(|d| format!(", default {d}"))
                .unwrap_or_default()
        );
    }
    println!(
        "  hosts:    declared {}; granted {}",
        if m.hosts.is_empty() {
            "none".into()
        } else {
            m.hosts.join(", ")
        },
        if p.policy.granted.is_empty() {
            "none".into()
        } else {
            p.policy
                .granted
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "  limits:   {} ms, {} MiB, {} requests, {} byte responses",
        p.limits.deadline_ms,
        p.limits.memory_mib,
        p.limits.max_http_requests,
        p.limits.max_response_bytes
    );
    let l = &p.limits;
    println!(
        "  output:   {} byte data, {} byte exit ids, {} byte errors, {} variables set, {} bytes per variable, {} in all, {} log bytes",
        l.max_data_bytes,
        l.max_exit_bytes,
        l.max_error_bytes,
        l.max_variables_set,
        l.max_variable_bytes,
        l.max_variables_bytes,
        l.max_log_bytes
    );
    if !p.missing_secrets.is_empty() {
        println!("  missing secrets: {}", p.missing_secrets.join(", "));
    }
}

/// A participant's state and journey, as a table or as JSON lines.
pub async fn print_participant(
    engine: &Engine,
    p: &ParticipantState,
    json: bool,
) -> anyhow::Result<()> {
    let journey = engine.journey(&p.id).await?;
    if json {
        for e in &journey {
            println!(
                "{}",
                serde_json::to_string(&json!({"participant": p.id, "step": e}))?
            );
        }
        println!(
            "{}",
            json!({"participant": p.id, "flow": p.flow_id, "status": p.status,
                   "current": p.current, "waiting_until": p.waiting_until, "variables": p.variables})
        );
        return Ok(());
    }
    println!(
        "participant {} ({}) in flow {:?}: {}{}",
        p.id,
        p.person.id,
        p.flow_id,
        p.status.as_str(),
        match (&p.current, p.waiting_until) {
            (Some(at), Some(until)) => format!(" in {at:?} until {}", format_ms(until)),
            _ => String::new(),
        }
    );
    println!(
        "  {:>3}  {:<14} {:<34} {:<18} {:<14} {:>9}",
        "#", "ELEMENT", "TYPE", "EXIT", "NEXT", "TIME"
    );
    for e in &journey {
        print_entry(e);
    }
    Ok(())
}

fn print_entry(e: &JourneyEntry) {
    let exit = match (&e.exit, e.waiting_until) {
        (Some(x), _) => x.clone(),
        (None, Some(_)) => "(waits)".into(),
        (None, None) => "(end)".into(),
    };
    println!(
        "  {:>3}  {:<14} {:<34} {:<18} {:<14} {:>9}",
        e.seq,
        e.element_id,
        e.element_type,
        exit,
        e.next.as_deref().unwrap_or("-"),
        format!("{:.2} ms", e.duration_us as f64 / 1000.0)
    );
    if e.retried > 0 {
        println!(
            "         ran again after {} takeover(s): its engine stopped before saving it, so its requests may have gone out before (same idempotency keys)",
            e.retried
        );
    }
    for (k, v) in &e.variables_changed {
        println!("         set {k} = {v}");
    }
    if let Some(err) = &e.error {
        println!("         error: {err}");
    }
    for r in &e.requests {
        println!("         request {}", request_line(r));
    }
    for l in &e.logs {
        println!("         log {:?}: {}", l.level, l.message);
    }
    if let Some(until) = e.waiting_until {
        println!("         waits until {}", format_ms(until));
    }
}

/// A time as `2026-11-30 17:45:00 UTC`.
pub fn format_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{ms} ms since the epoch"),
    }
}

/// A request a step sent: `GET https://... -> 200 in 1.2 ms`.
pub fn request_line(r: &flowhost::store::HttpRequestRecord) -> String {
    let answer = match (r.status, &r.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => error.clone(),
        (None, None) => "no answer".into(),
    };
    format!(
        "{} {} -> {answer} in {:.1} ms",
        r.method, r.url, r.duration_ms
    )
}
