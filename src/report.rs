//! Renders how a request was served: response headers (`x-router-*`) and the one structured
//! JSON log line per request. Both come from the same `Meta`, so they never disagree.

use crate::engine::Meta;
use crate::percent::header_value;
use crate::usage::format_usd;
use serde_json::json;

pub const H_REQUEST_ID: &str = "x-router-request-id";

/// Longest value of a header that names one thing (the model as the upstream named it, the
/// route, deployment, provider or task); longer values are cut (the log line keeps them whole).
pub const MAX_NAME_HEADER_BYTES: usize = 200;

/// Headers describing the answer; `now_ms` is when they are sent (for the overhead figure).
///
/// Every value is made safe for a header (`percent::header_value`): an upstream names its
/// model as it likes (CR/LF, NUL, non-Latin-1, any length), and a value the runtime's
/// `Headers` refuses would turn the answer into a 500 (and lose a stream's settle and log
/// line), while one it accepted could carry a header of its own. Names are also capped at
/// `MAX_NAME_HEADER_BYTES`; lists (fallback reasons, hedges) hold only the gateway's classes
/// and table names, which validation already restricts, so they are escaped but not cut.
pub fn response_headers(meta: &Meta, now_ms: u64) -> Vec<(&'static str, String)> {
    raw_headers(meta, now_ms)
        .into_iter()
        .map(|(k, v)| {
            let max = match k {
                "x-router-fallback-reasons" | "x-router-hedge" => usize::MAX,
                _ => MAX_NAME_HEADER_BYTES,
            };
            (k, header_value(&v, max))
        })
        .collect()
}

fn raw_headers(meta: &Meta, now_ms: u64) -> Vec<(&'static str, String)> {
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
        "subrequests": meta.subrequests,
        "error": meta.error,
        "usage": meta.usage.map(|u| json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "cached_tokens": u.cached_tokens, "estimated": meta.usage_estimated})),
        "cost_usd": meta.cost_nanos.map(format_usd),
        "duration_ms": now_ms.saturating_sub(meta.started_ms),
        "overhead_ms": meta.overhead_ms(now_ms),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AttemptRecord;
    use crate::resilience::ErrorClass;

    fn header<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_upstream_model_never_breaks_or_injects_into_the_headers() {
        for (model, expected) in [
            ("evil\r\nx-injected: 1", "evil%0D%0Ax-injected: 1"),
            ("modèle-日本", "mod%C3%A8le-%E6%97%A5%E6%9C%AC"),
            ("nul\0", "nul%00"),
        ] {
            let meta = Meta {
                request_id: "req_1".into(),
                route: "r".into(),
                deployment: Some("d".into()),
                model: Some(model.into()),
                ..Meta::default()
            };
            let h = response_headers(&meta, 0);
            assert_eq!(header(&h, "x-router-model"), Some(expected));
            for (k, v) in &h {
                assert!(v.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{k}: {v:?}");
            }
            assert!(
                log_line(&meta, 0).contains(&serde_json::to_string(model).unwrap_or_default()),
                "the log line keeps the model as the upstream named it"
            );
        }
    }

    #[test]
    fn names_are_capped_but_the_list_of_fallback_reasons_is_not() {
        let attempts: Vec<AttemptRecord> = (0..10)
            .map(|i| AttemptRecord {
                deployment: format!("deployment-with-a-long-name-{i}"),
                class: Some(ErrorClass::ServerError),
                status: Some(500),
                started_ms: 0,
                duration_ms: 1,
            })
            .collect();
        let meta = Meta {
            model: Some("m".repeat(5000)),
            deployment: Some("d".into()),
            attempts,
            ..Meta::default()
        };
        let h = response_headers(&meta, 0);
        assert_eq!(
            header(&h, "x-router-model"),
            Some("m".repeat(MAX_NAME_HEADER_BYTES).as_str())
        );
        let reasons = header(&h, "x-router-fallback-reasons").unwrap_or_default();
        assert_eq!(reasons, meta.fallback_reasons());
        assert!(reasons.len() > MAX_NAME_HEADER_BYTES);
    }
}
