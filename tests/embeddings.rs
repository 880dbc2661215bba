//! The embeddings walk (`embeddings::walk`) driven by a scripted transport and a manual clock:
//! retries and fallback by error class, the caller's own 400, timeouts, answers checked
//! against the request, usage and cost, Gemini's estimated count.

#[path = "support/mod.rs"]
mod support;

use edge_router::api::embeddings::parse_embeddings_request;
use edge_router::config::Deployment;
use edge_router::config::{parse_table, RoutingTable};
use edge_router::embeddings::walk::{EmbedOutcome, EmbedWalk};
use edge_router::engine::{AlwaysClosed, Health, Meta};
use edge_router::redact::Redactor;
use edge_router::state::breaker::{Report, View};
use futures::executor::block_on;
use serde_json::{json, Value};
use support::*;

const A: &str = "http://up-a/v1/embeddings";
const B: &str = "http://up-b/v1/embeddings";
const G: &str = "http://up-g/v1beta/models/gemini-embedding-001:embedContent";

/// Route "r" = [a, b] (OpenAI-compatible, 3 dimensions, $1/Mtok), route "g" = [g] (Gemini).
fn table() -> RoutingTable {
    let dep = |p: &str| {
        json!({"provider": p, "model": format!("model-{p}"), "context_window": 8191,
               "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 0},
               "embedding": {"family": "f", "dimensions": 3}, "limits": {"rpm": 1000}})
    };
    let t = json!({
        "version": 1,
        "defaults": {"retry": {"max_attempts": 2, "backoff_base_ms": 100, "backoff_max_ms": 1000,
                               "max_retry_after_ms": 5000},
                     "timeouts": {"connect_ms": 1000, "attempt_ms": 5000},
                     "request_timeout_ms": 60000},
        "providers": {"a": {"kind": "openai", "base_url": "http://up-a/v1"},
                      "b": {"kind": "openai", "base_url": "http://up-b/v1"},
                      "g": {"kind": "gemini", "base_url": "http://up-g/v1beta"}},
        "deployments": {"a": dep("a"), "b": dep("b"),
                        "g": {"provider": "g", "model": "gemini-embedding-001", "context_window": 2048,
                              "embedding": {"family": "gem", "dimensions": 3}}},
        "routes": {"r": {"kind": "embeddings", "chain": ["a", "b"]},
                   "g": {"kind": "embeddings", "chain": ["g"]}}
    });
    parse_table(&t.to_string()).unwrap()
}

fn answer(vectors: &[[f32; 3]], tokens: u64) -> String {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    json!({"object": "list", "data": data, "model": "m",
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    .to_string()
}

fn error(status: u16, kind: &str) -> Step {
    Step::json(
        status,
        &json!({"error": {"message": format!("upstream {status}"), "type": kind, "param": null, "code": null}})
            .to_string(),
    )
}

fn run(t: &RoutingTable, script: &Script, clock: &ManualClock, body: Value) -> EmbedOutcome {
    run_with(t, script, clock, body, &AlwaysClosed)
}

/// Every breaker as `view` says, every deployment limit refusing with `full` (retry in ms).
struct Fixed {
    view: View,
    full: Option<u64>,
}

impl Health for Fixed {
    async fn view(&self, _: &Deployment, _: u64) -> View {
        self.view
    }
    async fn acquire_probe(&self, _: &Deployment, _: bool, _: u64) -> bool {
        false
    }
    fn report(&self, _: &Deployment, _: Report) {}
    async fn admit(&self, _: &Deployment, _: &str, _: u64, _: u64) -> Result<(), u64> {
        self.full.map_or(Ok(()), Err)
    }
}

fn run_with<H: Health>(
    t: &RoutingTable,
    script: &Script,
    clock: &ManualClock,
    body: Value,
    health: &H,
) -> EmbedOutcome {
    let req = parse_embeddings_request(body.to_string().as_bytes()).unwrap();
    let route = t.route(&req.model).unwrap();
    let redactor = Redactor::for_table(t, &NoSecrets);
    let walk = EmbedWalk {
        table: t,
        transport: script,
        clock,
        secrets: &NoSecrets,
        health,
        redactor: &redactor,
    };
    let order: Vec<usize> = (0..route.chain.steps().len()).collect();
    let meta = Meta {
        request_id: "req_1".into(),
        route: route.name.clone(),
        started_ms: clock.0.get(),
        ..Meta::default()
    };
    block_on(walk.run(route, &req, &order, meta, 7))
}

fn answered(o: EmbedOutcome) -> (edge_router::embeddings::Embedded, Meta) {
    match o {
        EmbedOutcome::Answered { embedded, meta } => (embedded, meta),
        EmbedOutcome::Failed { error, meta } => {
            panic!("failed: {error:?} after {:?}", meta.attempts)
        }
    }
}

fn hits(script: &Script, url: &str) -> usize {
    script
        .requests
        .borrow()
        .iter()
        .filter(|r| r.url == url)
        .count()
}

#[test]
fn a_429_is_retried_after_its_hint_and_the_answer_costs_its_tokens() {
    let t = table();
    let clock = ManualClock::at(1_000);
    let script = Script::new(&clock);
    script.on_url(
        A,
        vec![
            error(429, "rate_limit_error").with_header("retry-after-ms", "700"),
            Step::json(200, &answer(&[[0.5, 0.25, 0.0]], 4)),
        ],
    );
    let (e, meta) = answered(run(
        &t,
        &script,
        &clock,
        json!({"model": "r", "input": "hello"}),
    ));
    assert_eq!(e.vectors, [[0.5f32, 0.25, 0.0]]);
    assert_eq!((e.prompt_tokens, e.estimated), (4, false));
    assert_eq!(hits(&script, A), 2);
    assert_eq!(meta.attempts.len(), 2);
    assert!(clock.0.get() >= 1_700, "waited for Retry-After");
    assert_eq!(meta.deployment.as_deref(), Some("a"));
    assert_eq!(meta.cost_nanos, Some(4_000), "4 tokens at $1/Mtok");
    assert_eq!(meta.usage.unwrap().prompt_tokens, 4);
}

#[test]
fn server_errors_fall_back_to_the_next_deployment_after_the_retries() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(A, vec![error(500, "server_error")]);
    script.on_url(
        B,
        vec![Step::json(
            200,
            &answer(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 2),
        )],
    );
    let (e, meta) = answered(run(
        &t,
        &script,
        &clock,
        json!({"model": "r", "input": ["x", "y"]}),
    ));
    assert_eq!(e.vectors.len(), 2);
    assert_eq!((hits(&script, A), hits(&script, B)), (2, 1));
    assert_eq!(meta.deployment.as_deref(), Some("b"));
    assert_eq!(
        meta.fallback_reasons(),
        "a:server_error:500, a:server_error:500"
    );
}

#[test]
fn the_callers_own_400_stops_the_walk_with_the_providers_reason() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(A, vec![error(400, "invalid_request_error")]);
    script.on_url(B, vec![Step::json(200, &answer(&[[1.0, 0.0, 0.0]], 1))]);
    match run(&t, &script, &clock, json!({"model": "r", "input": "x"})) {
        EmbedOutcome::Failed { error, meta } => {
            assert_eq!(error.status, 400);
            assert!(error.message.contains("upstream 400"), "{}", error.message);
            assert_eq!(meta.status, 400);
        }
        EmbedOutcome::Answered { .. } => panic!("a client error was answered"),
    }
    assert_eq!(hits(&script, B), 0, "no fallback on the caller's fault");
}

#[test]
fn a_silent_deployment_is_not_retried_and_a_wrong_answer_is_never_returned() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(A, vec![Step::Hang]);
    // b first answers vectors of the wrong length, then a good one.
    script.on_url(
        B,
        vec![
            Step::json(
                200,
                &json!({"data": [{"index": 0, "embedding": [0.1, 0.2]}]}).to_string(),
            ),
            Step::json(200, &answer(&[[0.0, 0.0, 1.0]], 1)),
        ],
    );
    let (e, meta) = answered(run(
        &t,
        &script,
        &clock,
        json!({"model": "r", "input": "x"}),
    ));
    assert_eq!(e.vectors, [[0.0f32, 0.0, 1.0]]);
    assert_eq!(
        hits(&script, A),
        1,
        "a timeout is never retried on the same deployment"
    );
    assert_eq!(hits(&script, B), 2);
    assert_eq!(
        meta.fallback_reasons(),
        "a:timeout_connect, b:malformed_response"
    );
}

#[test]
fn every_deployment_failing_is_a_502_naming_the_last_reason() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(A, vec![error(503, "server_error")]);
    script.on_url(B, vec![error(502, "server_error")]);
    match run(&t, &script, &clock, json!({"model": "r", "input": "x"})) {
        EmbedOutcome::Failed { error, meta } => {
            assert_eq!((error.status, error.kind), (502, "upstream_error"));
            assert!(error.message.contains("\"b\""), "{}", error.message);
            assert_eq!(meta.attempts.len(), 4);
        }
        EmbedOutcome::Answered { .. } => panic!("answered"),
    }
}

#[test]
fn gemini_is_asked_with_its_dimension_and_its_count_is_estimated() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(
        G,
        vec![Step::json(200, r#"{"embedding":{"values":[0.1,0.2,0.3]}}"#)],
    );
    let (e, meta) = answered(run(
        &t,
        &script,
        &clock,
        json!({"model": "g", "input": "twelve chars"}),
    ));
    assert!(e.estimated && meta.usage_estimated);
    assert_eq!(e.prompt_tokens, 3);
    let body: Value = serde_json::from_slice(&script.requests.borrow()[0].body).unwrap();
    assert_eq!(body["outputDimensionality"], 3);
}

#[test]
fn open_breakers_and_full_deployments_are_skipped_without_a_request() {
    let t = table();
    let clock = ManualClock::at(0);
    let script = Script::new(&clock);
    script.on_url(A, vec![Step::json(200, &answer(&[[1.0, 0.0, 0.0]], 1))]);
    let body = json!({"model": "r", "input": "x"});
    let open = Fixed {
        view: View::Open { until_ms: 60_000 },
        full: None,
    };
    match run_with(&t, &script, &clock, body.clone(), &open) {
        EmbedOutcome::Failed { error, meta } => {
            assert_eq!((error.status, error.code.as_str()), (503, "circuit_open"));
            assert_eq!(
                meta.fallback_reasons(),
                "a:skipped_breaker_open, b:skipped_breaker_open"
            );
        }
        EmbedOutcome::Answered { .. } => panic!("answered through open breakers"),
    }
    let full = Fixed {
        view: View::Closed,
        full: Some(2_500),
    };
    match run_with(&t, &script, &clock, body, &full) {
        EmbedOutcome::Failed { error, .. } => {
            assert_eq!(
                (error.status, error.code.as_str()),
                (429, "deployment_rate_limited")
            );
            assert_eq!(error.retry_after_s, Some(3));
        }
        EmbedOutcome::Answered { .. } => panic!("answered past the deployments' limits"),
    }
    assert_eq!(hits(&script, A), 0);
}
