//! Raw → validated routing table. Collects every problem (not just the first), each naming
//! the JSON path it concerns, so an operator can fix a table in one pass. The table-wide
//! parts are here; each section has its own file (`providers`, `health`, `policies`,
//! `routes`, `tasks`), and what they share is in `check`: this file depends on them, they
//! never on it.

use super::check::{check_name, join_keys, tag_list, Errors};
use super::money::usd_to_nanos;
use super::policies::{retry, timeouts, DEFAULT_RETRY, DEFAULT_TIMEOUTS};
use super::problems::Problem;
use super::providers::{prefill, provider_kind};
use super::raw::{
    RawCapabilities, RawCors, RawDefaults, RawDeployment, RawPrice, RawProvider, RawRequestLimits,
    RawTable,
};
use super::routes::{routes, RouteContext};
use super::types::*;
use crate::resilience::subrequests::{CACHE_CALLS, DEFAULT_SUBREQUESTS, MIN_SUBREQUESTS};
use crate::state::degradation::DegradeConfig;
use std::collections::BTreeMap;

pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_ESTIMATED_OUTPUT_TOKENS: u32 = 1_000;

/// The table-wide settings every deployment and route starts from.
struct Defaults {
    retry: RetryPolicy,
    timeouts: Timeouts,
    request_ms: u64,
    breaker: BreakerPolicy,
    degradation: DegradeConfig,
}

/// The deployments that validated, by name and index, with each one's retry policy.
#[derive(Default)]
struct Deployments<'a> {
    index: BTreeMap<&'a str, usize>,
    list: Vec<Deployment>,
    retry: Vec<RetryPolicy>,
}

pub fn validate(raw: RawTable) -> Result<RoutingTable, Vec<Problem>> {
    let mut errs = Errors::default();
    if raw.version != serde_json::json!(1) {
        errs.push(
            "version",
            format!("unsupported version {}, expected 1", raw.version),
        );
    }
    let defaults = defaults(&raw.defaults, &mut errs);
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
    let (provider_index, providers) = providers(&raw.providers, &mut errs);
    let deployments = deployments(&raw, &provider_index, &defaults, &mut errs);
    let routes = routes(
        &raw.routes,
        &RouteContext {
            raw_deployments: &raw.deployments,
            deployment_index: &deployments.index,
            deployments: &deployments.list,
            deployment_retry: &deployments.retry,
            default_retry: &defaults.retry,
            default_request_ms: defaults.request_ms,
        },
        &mut errs,
    );
    let tasks = raw
        .tasks
        .as_ref()
        .map(|t| super::tasks::tasks(t, &raw.routes, &routes, &mut errs));
    super::embedding::check_routes(&routes, &deployments.list, &providers, &mut errs);
    if let Some(t) = &tasks {
        super::embedding::check_tasks(t, &routes, &mut errs);
    }

    cache_fits_budget(&routes, &limits, &mut errs);
    let alerts = super::alerts::alerts(raw.alerts.as_ref(), &mut errs);

    if errs.is_empty() {
        Ok(RoutingTable {
            estimated_output_tokens,
            limits,
            cors_origins,
            providers,
            deployments: deployments.list,
            routes,
            tasks,
            alerts,
        })
    } else {
        Err(errs.into_problems())
    }
}

/// Every provider that validated, and its index by name.
fn providers<'a>(
    raw: &'a BTreeMap<String, RawProvider>,
    errs: &mut Errors,
) -> (BTreeMap<&'a str, usize>, Vec<Provider>) {
    let mut index = BTreeMap::new();
    let mut providers = Vec::new();
    for (name, p) in raw {
        let path = format!("providers.{name}");
        check_name(&path, name, errs);
        if let Some(kind) = provider_kind(&path, p, errs) {
            index.insert(name.as_str(), providers.len());
            let prefill = prefill(&path, p, &kind, errs);
            let bill_failed_prompts = p
                .bill_failed_prompts
                .unwrap_or(!matches!(kind, ProviderKind::Mock(_)));
            providers.push(Provider {
                name: name.clone(),
                kind,
                prefill,
                bill_failed_prompts,
            });
        }
    }
    (index, providers)
}

fn deployments<'a>(
    raw: &'a RawTable,
    provider_index: &BTreeMap<&str, usize>,
    defaults: &Defaults,
    errs: &mut Errors,
) -> Deployments<'a> {
    let mut out = Deployments::default();
    for (name, d) in &raw.deployments {
        let path = format!("deployments.{name}");
        check_name(&path, name, errs);
        let Some(&provider) = provider_index.get(d.provider.as_str()) else {
            let known = join_keys(raw.providers.keys());
            errs.push(
                &format!("{path}.provider"),
                format!("unknown provider {:?} (known: {known})", d.provider),
            );
            continue;
        };
        let (deployment, retry) = deployment(&path, name, d, provider, defaults, errs);
        out.index.insert(name.as_str(), out.list.len());
        out.retry.push(retry);
        out.list.push(deployment);
    }
    out
}

/// `deployments.<name>` (its provider already resolved), and its retry policy.
fn deployment(
    path: &str,
    name: &str,
    d: &RawDeployment,
    provider: usize,
    defaults: &Defaults,
    errs: &mut Errors,
) -> (Deployment, RetryPolicy) {
    if d.model.trim().is_empty() {
        errs.push(&format!("{path}.model"), "must not be empty");
    }
    if d.context_window == 0 {
        errs.push(&format!("{path}.context_window"), "must be at least 1");
    }
    let price = d
        .price
        .as_ref()
        .map_or_else(Price::default, |p| price(&format!("{path}.price"), p, errs));
    let timeouts = timeouts(
        &format!("{path}.timeouts"),
        &d.timeouts,
        &defaults.timeouts,
        errs,
    );
    let retry = retry(&format!("{path}.retry"), &d.retry, &defaults.retry, errs);
    let breaker = super::health::breaker(
        &format!("{path}.breaker"),
        &d.breaker,
        &defaults.breaker,
        timeouts.attempt_ms,
        errs,
    );
    let deployment = Deployment {
        name: name.to_string(),
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
            &defaults.degradation,
            errs,
        ),
        limits: super::health::limits(&format!("{path}.limits"), &d.limits, errs),
        tags: tag_list(&format!("{path}.tags"), &d.tags, errs),
        embedding: super::embedding::space(
            &format!("{path}.embedding"),
            d.embedding.as_ref(),
            errs,
        ),
    };
    (deployment, retry)
}

/// Prices in USD per million tokens (numbers or decimal strings) → integer nano-USD.
fn price(path: &str, p: &RawPrice, errs: &mut Errors) -> Price {
    let mut nanos = |field: &str, v: Option<&serde_json::Value>, or: u64| match v {
        None => or,
        Some(v) => match usd_to_nanos(v) {
            Ok(n) => n,
            Err(e) => {
                errs.push(&format!("{path}.{field}"), e);
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

/// A caching route spends `CACHE_CALLS` of every request's subrequests on the cache, so the
/// budget must still pay for one attempt after them.
fn cache_fits_budget(routes: &BTreeMap<String, Route>, limits: &RequestLimits, errs: &mut Errors) {
    let needed = MIN_SUBREQUESTS.saturating_add(CACHE_CALLS);
    if limits.subrequests >= needed {
        return;
    }
    for (name, _) in routes.iter().filter(|(_, r)| r.cache.is_some()) {
        errs.push(
            &format!("routes.{name}.cache"),
            format!(
                "needs limits.subrequests of at least {needed} (the cache's lookup and store \
                 come out of every request's budget); it is {}",
                limits.subrequests
            ),
        );
    }
}

fn defaults(raw: &RawDefaults, errs: &mut Errors) -> Defaults {
    let retry = retry("defaults.retry", &raw.retry, &DEFAULT_RETRY, errs);
    let timeouts = timeouts("defaults.timeouts", &raw.timeouts, &DEFAULT_TIMEOUTS, errs);
    let request_ms = errs.ms(
        "defaults.request_timeout_ms",
        raw.request_timeout_ms,
        DEFAULT_REQUEST_TIMEOUT_MS,
    );
    let breaker = super::health::breaker(
        "defaults.breaker",
        &raw.breaker,
        &BreakerPolicy::default(),
        timeouts.attempt_ms,
        errs,
    );
    Defaults {
        retry,
        timeouts,
        request_ms,
        breaker,
        degradation: super::degradation::degradation(
            "defaults.degradation",
            raw.degradation.as_ref(),
            &DegradeConfig::default(),
            errs,
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
