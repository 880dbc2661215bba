//! Renders how a request was served: response headers (`x-router-*`) and the one structured
//! JSON log line per request. Both come from the same `Meta`, so they never disagree.

use crate::engine::Meta;
use crate::usage::format_usd;
use serde_json::json;

pub const H_REQUEST_ID: &str = "x-router-request-id";

/// Headers describing the answer; `now_ms` is when they are sent (for the overhead figure).
pub fn response_headers(meta: &Meta, now_ms: u64) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (H_REQUEST_ID, meta.request_id.clone()),
        ("x-router-route", meta.route.clone()),
        ("x-router-attempts", meta.attempts.len().to_string()),
        ("x-router-overhead-ms", meta.overhead_ms(now_ms).to_string()),
    ];
    if let Some(d) = &meta.deployment {
        h.push(("x-router-deployment", d.clone()));
    }
    if let Some(p) = &meta.provider {
        h.push(("x-router-provider", p.clone()));
    }
    if let Some(m) = &meta.model {
        h.push(("x-router-model", m.clone()));
    }
    let reasons = meta.fallback_reasons();
    if !reasons.is_empty() {
        h.push(("x-router-fallback-reasons", reasons));
    }
    if let Some(c) = meta.cost_nanos {
        h.push(("x-router-cost-usd", format_usd(c)));
    }
    if !meta.hedges.is_empty() {
        h.push(("x-router-hedge", meta.hedges.join(",")));
    }
    h.extend(meta.extra_headers.iter().cloned());
    h
}

/// One JSON line with everything an operator needs to know about the request.
pub fn log_line(meta: &Meta, now_ms: u64) -> String {
    let attempts: Vec<_> = meta
        .attempts
        .iter()
        .map(|a| {
            json!({"deployment": a.deployment, "outcome": a.class.map_or("ok", |c| c.as_str()),
                   "status": a.status, "ms": a.duration_ms})
        })
        .collect();
    json!({
        "msg": "request",
        "request_id": meta.request_id,
        "route": meta.route,
        "stream": meta.stream,
        "status": meta.status,
        "deployment": meta.deployment,
        "provider": meta.provider,
        "model": meta.model,
        "attempts": attempts,
        "skipped": meta.skipped,
        "resumes": meta.resumes,
        "hedges": meta.hedges,
        "key": meta.key_name,
        "task": meta.task,
        "route_source": meta.route_source,
        "do_calls": {"waited": meta.state_calls.0, "background": meta.state_calls.1},
        "error": meta.error,
        "usage": meta.usage.map(|u| json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "cached_tokens": u.cached_tokens, "estimated": meta.usage_estimated})),
        "cost_usd": meta.cost_nanos.map(format_usd),
        "duration_ms": now_ms.saturating_sub(meta.started_ms),
        "overhead_ms": meta.overhead_ms(now_ms),
    })
    .to_string()
}
