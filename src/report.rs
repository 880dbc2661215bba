//! Renders how a request was served: response headers (`x-router-*`) and the one structured
//! JSON log line per request. Both come from the same `Meta`, so they never disagree.

use crate::engine::Meta;
use crate::percent::header_value;
use crate::usage::format_usd;
use serde::Serialize;

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
        h.push(("x-router-hedge", meta.hedge_list()));
    }
    if let Some(c) = meta.cache {
        h.push((crate::cache::policy::CACHE_HEADER, c.as_str().to_string()));
    }
    h.extend(meta.extra_headers.iter().cloned());
    h
}

/// One JSON line with everything an operator needs to know about the request. Serialized
/// straight from borrowed fields (no intermediate `serde_json::Value` tree: this runs for
/// every request).
pub fn log_line(meta: &Meta, now_ms: u64) -> String {
    let line = LogLine {
        msg: "request",
        request_id: &meta.request_id,
        route: &meta.route,
        stream: meta.stream,
        status: meta.status,
        deployment: meta.deployment.as_deref(),
        provider: meta.provider.as_deref(),
        model: meta.model.as_deref(),
        attempts: meta
            .attempts
            .iter()
            .map(|a| LogAttempt {
                deployment: &a.deployment,
                outcome: a.class.map_or("ok", |c| c.as_str()),
                status: a.status,
                ms: a.duration_ms,
            })
            .collect(),
        skipped: meta
            .skipped
            .iter()
            .map(|(d, why)| (d.as_str(), why.as_str()))
            .collect(),
        deferred: meta
            .deferred
            .iter()
            .map(|(d, why)| (d.as_str(), why.as_str()))
            .collect(),
        resumes: meta.resume_list(),
        hedges: meta
            .hedges
            .iter()
            .map(|(d, h)| format!("{d}:{}", h.as_str()))
            .collect(),
        key: meta.key_name.as_deref(),
        task: meta.task.as_deref(),
        route_source: meta.route_source.as_deref(),
        do_calls: DoCalls {
            waited: meta.state_calls.0,
            background: meta.state_calls.1,
        },
        subrequests: meta.subrequests,
        error: meta.error.as_deref(),
        usage: meta.usage.map(|u| LogUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.cached_tokens,
            reasoning_tokens: u.reasoning_tokens,
            estimated: meta.usage_estimated,
        }),
        cost_usd: meta.cost_nanos.map(format_usd),
        cache: meta.cache.map(|c| c.as_str()),
        failed_prompts: meta
            .failed_prompts
            .iter()
            .map(|(d, n)| (d.as_str(), format_usd(*n)))
            .collect(),
        duration_ms: now_ms.saturating_sub(meta.started_ms),
        overhead_ms: meta.overhead_ms(now_ms),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

#[derive(Serialize)]
struct LogLine<'a> {
    msg: &'static str,
    request_id: &'a str,
    route: &'a str,
    stream: bool,
    status: u16,
    deployment: Option<&'a str>,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    attempts: Vec<LogAttempt<'a>>,
    skipped: Vec<(&'a str, &'static str)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deferred: Vec<(&'a str, &'static str)>,
    resumes: Vec<String>,
    hedges: Vec<String>,
    key: Option<&'a str>,
    task: Option<&'a str>,
    route_source: Option<&'a str>,
    do_calls: DoCalls,
    subrequests: u32,
    error: Option<&'a str>,
    usage: Option<LogUsage>,
    cost_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'static str>,
    /// Part of `cost_usd`: the billed prompts of failed attempts and cancelled hedges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed_prompts: Vec<(&'a str, String)>,
    duration_ms: u64,
    overhead_ms: u64,
}

#[derive(Serialize)]
struct LogAttempt<'a> {
    deployment: &'a str,
    outcome: &'static str,
    status: Option<u16>,
    ms: u64,
}

#[derive(Serialize)]
struct DoCalls {
    waited: u32,
    background: u32,
}

#[derive(Serialize)]
struct LogUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_tokens: Option<u64>,
    estimated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::resume::Method;
    use crate::engine::{AttemptRecord, Skip};
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

    #[test]
    fn the_cache_status_is_a_header_and_a_log_field_only_on_caching_routes() {
        let mut meta = Meta::default();
        assert_eq!(header(&response_headers(&meta, 0), "x-router-cache"), None);
        assert!(!log_line(&meta, 0).contains("\"cache\""));
        for (status, s) in [
            (crate::engine::CacheStatus::Hit, "hit"),
            (crate::engine::CacheStatus::Miss, "miss"),
            (crate::engine::CacheStatus::Bypass, "bypass"),
        ] {
            meta.cache = Some(status);
            assert_eq!(
                header(&response_headers(&meta, 0), "x-router-cache"),
                Some(s)
            );
            let v: serde_json::Value = serde_json::from_str(&log_line(&meta, 0)).unwrap();
            assert_eq!(v["cache"], s);
        }
    }

    #[test]
    fn the_log_line_keeps_its_fields_and_their_shapes() {
        let meta = Meta {
            request_id: "req_1".into(),
            route: "r".into(),
            stream: true,
            status: 200,
            started_ms: 1_000,
            deployment: Some("b".into()),
            provider: Some("openai".into()),
            model: Some("m".into()),
            attempts: vec![AttemptRecord {
                deployment: "a".into(),
                class: Some(ErrorClass::ServerError),
                status: Some(500),
                started_ms: 1_000,
                duration_ms: 7,
            }],
            skipped: vec![("c".into(), Skip::ContextWindow)],
            resumes: vec![("b".into(), Method::Prefill)],
            key_name: Some("k".into()),
            state_calls: (1, 2),
            subrequests: 9,
            usage: Some(crate::usage::Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                ..Default::default()
            }),
            cost_nanos: Some(1_500),
            ..Meta::default()
        };
        let v: serde_json::Value = serde_json::from_str(&log_line(&meta, 1_050)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "msg": "request", "request_id": "req_1", "route": "r", "stream": true,
                "status": 200, "deployment": "b", "provider": "openai", "model": "m",
                "attempts": [{"deployment": "a", "outcome": ErrorClass::ServerError.as_str(), "status": 500, "ms": 7}],
                "skipped": [["c", "context_window"]], "resumes": ["b:prefill"], "hedges": [],
                "key": "k", "task": null, "route_source": null,
                "do_calls": {"waited": 1, "background": 2}, "subrequests": 9, "error": null,
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "cached_tokens": null, "estimated": false},
                "cost_usd": format_usd(1_500), "duration_ms": 50, "overhead_ms": meta.overhead_ms(1_050),
            })
        );
    }
}
