//! The error the caller gets when the engine gives up, with the status that tells the truth:
//! the caller's own fault → the provider's 4xx and reason; every attempt rate limited → 429
//! with Retry-After; every attempt timed out (or the request deadline passed) → 504; the
//! request's subrequest budget stopped it → 503 naming `limits.subrequests`; anything else →
//! 502 naming the last upstream reason.

use super::meta::Meta;
use crate::api::ApiError;
use crate::config::Route;
use crate::redact::cap;
use crate::resilience::subrequests::SubrequestBudget;
use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::Value;

/// The request itself was refused (invalid, content policy, too long for every deployment).
pub fn client_fault(e: &UpstreamError) -> ApiError {
    let parsed: Option<Value> = e
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|er| er.get(k))
            .and_then(Value::as_str)
            // Codes and params are short identifiers; the body was scrubbed already.
            .map(|v| cap(v, 100))
    };
    let status = e.status.filter(|s| (400..500).contains(s)).unwrap_or(400);
    let mut api = ApiError::new(
        status,
        "invalid_request_error",
        field("code").unwrap_or_else(|| e.class.as_str().to_string()),
        e.message.clone(),
    );
    api.param = field("param");
    api
}

/// No deployment of the route has a capability the request needs.
pub fn unsupported(route: &Route, capability: &str) -> ApiError {
    let mut e = ApiError::new(
        400,
        "invalid_request_error",
        "capability_unsupported",
        format!(
            "no deployment of model \"{}\" supports {capability}, which this request needs",
            route.name
        ),
    );
    e.param = Some(
        match capability {
            "tools" => "tools",
            "vision" => "messages",
            "json" => "response_format",
            _ => "stream",
        }
        .to_string(),
    );
    e
}

pub fn exhausted(
    route: &Route,
    meta: &Meta,
    last: Option<&UpstreamError>,
    deadline_hit: bool,
) -> ApiError {
    let classes: Vec<ErrorClass> = meta.attempts.iter().filter_map(|a| a.class).collect();
    let n_dep = route.chain.steps().len();
    let reason = match (last, meta.attempts.last()) {
        (Some(e), Some(a)) => format!(
            "last error from deployment \"{}\": {}",
            a.deployment, e.message
        ),
        _ => "no deployment could be tried".to_string(),
    };
    if let Some(e) = last.filter(|e| e.class == ErrorClass::ContextLengthExceeded) {
        let mut api = client_fault(e);
        api.message = format!(
            "{} (no deployment of model \"{}\" has a larger context window)",
            e.message, route.name
        );
        return api;
    }
    let summary = format!(
        "model \"{}\": {} attempt(s) on {} deployment(s) failed; {}",
        route.name,
        classes.len(),
        n_dep,
        reason
    );
    if deadline_hit {
        return ApiError::new(
            504,
            "timeout_error",
            "request_timeout",
            format!(
                "request deadline of {} ms passed; {summary}",
                route.request_timeout_ms
            ),
        );
    }
    if !classes.is_empty() && classes.iter().all(|c| *c == ErrorClass::RateLimited) {
        let hint = meta_retry_after(last);
        let mut api = ApiError::new(429, "rate_limit_error", "rate_limited", summary);
        api.retry_after_s = Some(hint);
        return api;
    }
    if !classes.is_empty() && classes.iter().all(|c| c.is_timeout()) {
        let code = last.map_or("timeout_attempt", |e| e.class.as_str());
        return ApiError::new(504, "timeout_error", code, summary);
    }
    let code = last.map_or("upstream_error", |e| e.class.as_str());
    ApiError::new(502, "upstream_error", code, summary)
}

/// The request reached its subrequest budget before any attempt answered: 503 naming the
/// setting and its value (raising it, or a shorter chain, is the fix), with the last upstream
/// reason when there was an attempt. Not a deployment's fault: no breaker hears of it.
pub fn budget_exhausted(
    route: &Route,
    meta: &Meta,
    last: Option<&UpstreamError>,
    budget: &SubrequestBudget,
) -> ApiError {
    let reason = match (last, meta.attempts.last()) {
        (Some(e), Some(a)) => format!(
            "; last error from deployment \"{}\": {}",
            a.deployment, e.message
        ),
        _ => String::new(),
    };
    ApiError::new(
        503,
        "service_unavailable",
        "subrequest_budget_exhausted",
        format!(
            "model \"{}\": stopped after {} upstream attempt(s): {}{reason}",
            route.name,
            meta.attempts.len(),
            budget.describe()
        ),
    )
}

/// Every deployment's breaker is open (and the probe of the first to reopen, if one was
/// allowed, failed): 503 with Retry-After until the earliest reopening.
pub fn all_open(
    route: &Route,
    meta: &Meta,
    last: Option<&UpstreamError>,
    reopens_in_ms: Option<u64>,
) -> ApiError {
    let probe = match (last, meta.attempts.last()) {
        (Some(e), Some(a)) => format!(
            "; the probe of deployment \"{}\" failed: {}",
            a.deployment, e.message
        ),
        _ => String::new(),
    };
    let mut api = ApiError::new(
        503,
        "service_unavailable",
        "circuit_open",
        format!(
            "model \"{}\": every deployment is unavailable (circuit breakers open){probe}",
            route.name
        ),
    );
    api.retry_after_s = reopens_in_ms.map(|ms| ms.div_ceil(1000).max(1));
    api
}

/// Every deployment that could serve the request is at its own rate limit: 429 with
/// Retry-After until the first of them has room again.
pub fn deployments_limited(route: &Route, retry_in_ms: u64) -> ApiError {
    let mut api = ApiError::new(
        429,
        "rate_limit_error",
        "deployment_rate_limited",
        format!(
            "model \"{}\": every deployment is at its requests- or tokens-per-minute limit",
            route.name
        ),
    );
    api.retry_after_s = Some(retry_in_ms.div_ceil(1000).max(1));
    api
}

/// Seconds the caller should wait: the last upstream hint rounded up, at least 1.
fn meta_retry_after(last: Option<&UpstreamError>) -> u64 {
    last.and_then(|e| e.retry_after_ms)
        .map_or(1, |ms| ms.div_ceil(1000).max(1))
}
