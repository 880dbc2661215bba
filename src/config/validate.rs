//! Raw → validated routing table. Collects every error (not just the first), each prefixed
//! with the JSON path it concerns, so an operator can fix a table in one pass.

use super::money::usd_to_nanos;
use super::providers::provider_kind;
use super::raw::{
    RawCapabilities, RawCors, RawDefaults, RawRequestLimits, RawRetry, RawTable, RawTimeouts,
};
use super::types::*;
use crate::resilience::subrequests::{DEFAULT_SUBREQUESTS, MIN_SUBREQUESTS};
use std::collections::BTreeMap;

/// Hard bounds that keep a table from disabling the gateway's guarantees.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_ATTEMPTS: u32 = 10;

pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    backoff_base_ms: 200,
    backoff_max_ms: 2_000,
    max_retry_after_ms: 5_000,
};
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect_ms: 10_000,
    first_token_ms: 30_000,
    idle_ms: 30_000,
    attempt_ms: 120_000,
};
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_ESTIMATED_OUTPUT_TOKENS: u32 = 1_000;

pub(super) struct Errors(pub(super) Vec<String>);

impl Errors {
    pub(super) fn push(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }
    pub(super) fn ms(&mut self, path: &str, value: Option<u64>, fallback: u64) -> u64 {
        match value {
            Some(0) => {
                self.push(path, "must be at least 1 ms");
                fallback
            }
            Some(v) if v > MAX_TIMEOUT_MS => {
                self.push(path, format!("must be at most {MAX_TIMEOUT_MS} ms"));
                fallback
            }
            Some(v) => v,
            None => fallback,
        }
    }
}

pub fn validate(raw: RawTable) -> Result<RoutingTable, Vec<String>> {
    let mut errs = Errors(Vec::new());
    if raw.version != serde_json::json!(1) {
        errs.push(
            "version",
            format!("unsupported version {}, expected 1", raw.version),
        );
    }
    let (default_retry, default_timeouts, default_request_ms) = defaults(&raw.defaults, &mut errs);
    let default_breaker = super::health::breaker(
        "defaults.breaker",
        &raw.defaults.breaker,
        &BreakerPolicy::default(),
        default_timeouts.attempt_ms,
        &mut errs,
    );
    let default_degradation = super::degradation::degradation(
        "defaults.degradation",
        raw.defaults.degradation.as_ref(),
        &Default::default(),
        &mut errs,
    );
    let estimated_output_tokens = match raw.defaults.estimated_output_tokens {
        Some(0) => {
            errs.push("defaults.estimated_output_tokens", "must be at least 1");
            DEFAULT_ESTIMATED_OUTPUT_TOKENS
        }
        Some(n) => n,
        None => DEFAULT_ESTIMATED_OUTPUT_TOKENS,
    };
    let limits = request_limits(&raw.limits, &mut errs);
    let cors_origins = cors_origins(&raw.cors, &mut errs);

    let mut provider_index = BTreeMap::new();
    let mut providers = Vec::new();
    for (name, p) in &raw.providers {
        let path = format!("providers.{name}");
        check_name(&path, name, &mut errs);
        if let Some(kind) = provider_kind(&path, p, &mut errs) {
            provider_index.insert(name.as_str(), providers.len());
            let prefill = super::providers::prefill(&path, p, &kind, &mut errs);
            providers.push(Provider {
                name: name.clone(),
                kind,
                prefill,
            });
        }
    }

    let mut deployment_index = BTreeMap::new();
    let mut deployments = Vec::new();
    let mut deployment_retry = Vec::new();
    for (name, d) in &raw.deployments {
        let path = format!("deployments.{name}");
        check_name(&path, name, &mut errs);
        let provider = match provider_index.get(d.provider.as_str()) {
            Some(i) => *i,
            None => {
                let known = join_keys(raw.providers.keys());
                errs.push(
                    &format!("{path}.provider"),
                    format!("unknown provider {:?} (known: {known})", d.provider),
                );
                continue;
            }
        };
        if d.model.trim().is_empty() {
            errs.push(&format!("{path}.model"), "must not be empty");
        }
        if d.context_window == 0 {
            errs.push(&format!("{path}.context_window"), "must be at least 1");
        }
        let price = match &d.price {
            None => Price::default(),
            Some(p) => {
                let mut nanos = |field: &str, v: Option<&serde_json::Value>, or: u64| match v {
                    None => or,
                    Some(v) => match usd_to_nanos(v) {
                        Ok(n) => n,
                        Err(e) => {
                            errs.push(&format!("{path}.price.{field}"), e);
                            0
                        }
                    },
                };
                let input = nanos("input_per_mtok_usd", Some(&p.input_per_mtok_usd), 0);
                let output = nanos("output_per_mtok_usd", Some(&p.output_per_mtok_usd), 0);
                // Cache reads and writes cost the input price unless the table says otherwise.
                Price {
                    cached_input_nanos_per_mtok: nanos(
                        "cached_input_per_mtok_usd",
                        p.cached_input_per_mtok_usd.as_ref(),
                        input,
                    ),
                    cache_write_nanos_per_mtok: nanos(
                        "cache_write_per_mtok_usd",
                        p.cache_write_per_mtok_usd.as_ref(),
                        input,
                    ),
                    ..Price::flat(input, output)
                }
            }
        };
        let timeouts = timeouts(
            &format!("{path}.timeouts"),
            &d.timeouts,
            &default_timeouts,
            &mut errs,
        );
        let retry = retry(
            &format!("{path}.retry"),
            &d.retry,
            &default_retry,
            &mut errs,
        );
        let breaker = super::health::breaker(
            &format!("{path}.breaker"),
            &d.breaker,
            &default_breaker,
            timeouts.attempt_ms,
            &mut errs,
        );
        let limits = super::health::limits(&format!("{path}.limits"), &d.limits, &mut errs);
        deployment_index.insert(name.as_str(), deployments.len());
        deployment_retry.push(retry);
        deployments.push(Deployment {
            name: name.clone(),
            provider,
            model: d.model.clone(),
            context_window: d.context_window,
            price,
            timeouts,
            capabilities: capabilities(&d.capabilities),
            breaker,
            degradation: super::degradation::degradation(
                &format!("{path}.degradation"),
                d.degradation.as_ref(),
                &default_degradation,
                &mut errs,
            ),
            limits,
            tags: super::routes::tag_list(&format!("{path}.tags"), &d.tags, &mut errs),
        });
    }

    let routes = super::routes::routes(
        &raw.routes,
        &super::routes::RouteContext {
            raw_deployments: &raw.deployments,
            deployment_index: &deployment_index,
            deployments: &deployments,
            deployment_retry: &deployment_retry,
            default_retry: &default_retry,
            default_request_ms,
        },
        &mut errs,
    );
    let tasks = raw
        .tasks
        .as_ref()
        .map(|t| super::tasks::tasks(t, &raw.routes, &routes, &mut errs));

    if errs.0.is_empty() {
        Ok(RoutingTable {
            estimated_output_tokens,
            limits,
            cors_origins,
            providers,
            deployments,
            routes,
            tasks,
        })
    } else {
        Err(errs.0)
    }
}

/// `cors.allow_origins`: `*`, or origins as browsers send them (`scheme://host[:port]`, no
/// path, no trailing slash), since they are compared exactly.
fn cors_origins(raw: &RawCors, errs: &mut Errors) -> Vec<String> {
    for (i, o) in raw.allow_origins.iter().enumerate() {
        if o == "*" {
            continue;
        }
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        let ok = rest.is_some_and(|host| {
            !host.is_empty()
                && !host.contains(['/', '?', '#', ' '])
                && host.chars().all(|c| c.is_ascii_graphic())
        });
        if !ok {
            errs.push(
                &format!("cors.allow_origins[{i}]"),
                format!(
                    "{o:?} is not an origin: write it as a browser sends it, e.g. \"https://app.example.com\" (no path, no trailing slash), or \"*\""
                ),
            );
        }
    }
    raw.allow_origins.clone()
}

fn request_limits(raw: &RawRequestLimits, errs: &mut Errors) -> RequestLimits {
    let subrequests = match raw.subrequests {
        Some(n) if n < MIN_SUBREQUESTS => {
            errs.push(
                "limits.subrequests",
                format!(
                    "must be at least {MIN_SUBREQUESTS} (the gateway's own state calls plus one \
                     upstream attempt); Workers Free allows 50, Workers Paid 10000"
                ),
            );
            DEFAULT_SUBREQUESTS
        }
        Some(n) => n,
        None => DEFAULT_SUBREQUESTS,
    };
    RequestLimits { subrequests }
}

fn defaults(raw: &RawDefaults, errs: &mut Errors) -> (RetryPolicy, Timeouts, u64) {
    let retry = retry("defaults.retry", &raw.retry, &DEFAULT_RETRY, errs);
    let timeouts = timeouts("defaults.timeouts", &raw.timeouts, &DEFAULT_TIMEOUTS, errs);
    let request = errs.ms(
        "defaults.request_timeout_ms",
        raw.request_timeout_ms,
        DEFAULT_REQUEST_TIMEOUT_MS,
    );
    (retry, timeouts, request)
}

pub(super) fn retry(
    path: &str,
    raw: &RawRetry,
    base: &RetryPolicy,
    errs: &mut Errors,
) -> RetryPolicy {
    let max_attempts = match raw.max_attempts {
        Some(n) if n == 0 || n > MAX_ATTEMPTS => {
            errs.push(
                &format!("{path}.max_attempts"),
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            );
            base.max_attempts
        }
        Some(n) => n,
        None => base.max_attempts,
    };
    let backoff_base_ms = errs.ms(
        &format!("{path}.backoff_base_ms"),
        raw.backoff_base_ms,
        base.backoff_base_ms,
    );
    let backoff_max_ms = errs.ms(
        &format!("{path}.backoff_max_ms"),
        raw.backoff_max_ms,
        base.backoff_max_ms,
    );
    if backoff_max_ms < backoff_base_ms {
        errs.push(
            &format!("{path}.backoff_max_ms"),
            "must not be below backoff_base_ms",
        );
    }
    let max_retry_after_ms = match raw.max_retry_after_ms {
        Some(v) if v > MAX_TIMEOUT_MS => {
            errs.push(
                &format!("{path}.max_retry_after_ms"),
                format!("must be at most {MAX_TIMEOUT_MS} ms"),
            );
            base.max_retry_after_ms
        }
        Some(v) => v,
        None => base.max_retry_after_ms,
    };
    RetryPolicy {
        max_attempts,
        backoff_base_ms,
        backoff_max_ms,
        max_retry_after_ms,
    }
}

fn timeouts(path: &str, raw: &RawTimeouts, base: &Timeouts, errs: &mut Errors) -> Timeouts {
    Timeouts {
        connect_ms: errs.ms(
            &format!("{path}.connect_ms"),
            raw.connect_ms,
            base.connect_ms,
        ),
        first_token_ms: errs.ms(
            &format!("{path}.first_token_ms"),
            raw.first_token_ms,
            base.first_token_ms,
        ),
        idle_ms: errs.ms(&format!("{path}.idle_ms"), raw.idle_ms, base.idle_ms),
        attempt_ms: errs.ms(
            &format!("{path}.attempt_ms"),
            raw.attempt_ms,
            base.attempt_ms,
        ),
    }
}

fn capabilities(raw: &RawCapabilities) -> Capabilities {
    let d = Capabilities::default();
    Capabilities {
        tools: raw.tools.unwrap_or(d.tools),
        vision: raw.vision.unwrap_or(d.vision),
        json: raw.json.unwrap_or(d.json),
        streaming: raw.streaming.unwrap_or(d.streaming),
    }
}

pub(super) fn check_name(path: &str, name: &str, errs: &mut Errors) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b));
    if !ok {
        errs.push(
            path,
            "name must be 1-128 characters of letters, digits and - _ . : / @",
        );
    }
}

pub(super) fn join_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = keys.map(|k| format!("{k:?}")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
