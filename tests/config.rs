//! Routing-table validation: good tables become typed config; bad ones are rejected with every
//! problem named by its JSON path.

use edge_router::config::{parse_table, ProviderKind, EMBEDDED_DEFAULT};
use serde_json::{json, Value};

fn good() -> Value {
    json!({
        "version": 1,
        "defaults": {"retry": {"max_attempts": 3}, "timeouts": {"idle_ms": 5000}, "request_timeout_ms": 90000},
        "providers": {
            "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1/", "api_key_secret": "OPENAI_API_KEY",
                       "headers": {"OpenAI-Organization": "org-1"}},
            "local": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1"},
            "mock": {"kind": "mock", "mock": {"fail_status": 503, "latency_ms": 10}}
        },
        "deployments": {
            "gpt-mini": {"provider": "openai", "model": "gpt-4o-mini", "context_window": 128000,
                         "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": "0.60"},
                         "timeouts": {"first_token_ms": 8000}, "retry": {"backoff_base_ms": 50}},
            "llama": {"provider": "local", "model": "llama-3.1-8b", "context_window": 8192},
            "m": {"provider": "mock", "model": "m1", "context_window": 1000}
        },
        "routes": {
            "workhorse": {"chain": ["gpt-mini", "llama", "m"], "retry": {"max_attempts": 1}, "fallback_on_content_policy": true},
            "local-first": {"chain": ["llama", "gpt-mini"], "request_timeout_ms": 20000}
        }
    })
}

fn errors_of(v: &Value) -> Vec<String> {
    parse_table(&v.to_string()).expect_err("table should be rejected")
}

#[test]
fn embedded_default_is_valid_and_mock_only() {
    let t = parse_table(EMBEDDED_DEFAULT).unwrap();
    assert!(t
        .providers
        .iter()
        .all(|p| matches!(p.kind, ProviderKind::Mock(_))));
    assert!(t.route("mock-small").is_some() && t.route("mock-fallback-demo").is_some());
}

#[test]
fn good_table_resolves_defaults_and_overrides() {
    let t = parse_table(&good().to_string()).unwrap();
    let route = t.route("workhorse").unwrap();
    let steps = route.chain.steps();
    assert_eq!(steps.len(), 3);
    let mini = t.deployment(steps[0].deployment).unwrap();
    assert_eq!(mini.name, "gpt-mini");
    assert_eq!(mini.price.input_nanos_per_mtok, 150_000_000);
    assert_eq!(mini.price.output_nanos_per_mtok, 600_000_000);
    assert_eq!(mini.timeouts.first_token_ms, 8000);
    assert_eq!(mini.timeouts.idle_ms, 5000, "from defaults");
    assert_eq!(mini.timeouts.connect_ms, 10_000, "built-in default");
    // defaults (3) <- deployment (backoff 50) <- route (max_attempts 1)
    assert_eq!(steps[0].retry.max_attempts, 1);
    assert_eq!(steps[0].retry.backoff_base_ms, 50);
    assert_eq!(
        t.route("local-first").unwrap().chain.steps()[1]
            .retry
            .max_attempts,
        3
    );
    assert_eq!(route.request_timeout_ms, 90_000);
    assert_eq!(t.route("local-first").unwrap().request_timeout_ms, 20_000);
    assert!(route.fallback_on_content_policy);
    let ProviderKind::OpenAi(p) = &t
        .providers
        .iter()
        .find(|p| p.name == "openai")
        .unwrap()
        .kind
    else {
        panic!()
    };
    assert_eq!(
        p.http.base_url, "https://api.openai.com/v1",
        "trailing slash trimmed"
    );
    assert_eq!(
        p.http.headers,
        vec![("openai-organization".to_string(), "org-1".to_string())]
    );
}

#[test]
fn every_error_is_reported_with_its_path() {
    let mut t = good();
    t["routes"]["workhorse"]["chain"] = json!(["gpt-mini", "gpt5", "gpt-mini"]);
    t["routes"]["empty"] = json!({"chain": []});
    t["deployments"]["llama"]["provider"] = json!("nope");
    t["deployments"]["gpt-mini"]["price"]["input_per_mtok_usd"] = json!(-1);
    t["deployments"]["m"]["timeouts"] = json!({"idle_ms": 0});
    t["providers"]["local"]["base_url"] = json!("ftp://x");
    t["providers"]["mock"]["mock"]["fail_status"] = json!(200);
    t["defaults"]["retry"]["max_attempts"] = json!(0);
    let errs = errors_of(&t);
    let expect = [
        "routes.workhorse.chain[1]: unknown deployment \"gpt5\"",
        "routes.workhorse.chain[2]: deployment \"gpt-mini\" appears twice",
        "routes.empty.chain: must list at least one deployment",
        "deployments.llama.provider: unknown provider \"nope\"",
        "deployments.gpt-mini.price.input_per_mtok_usd:",
        "deployments.m.timeouts.idle_ms: must be at least 1 ms",
        "providers.local.base_url:",
        "providers.mock.mock.fail_status:",
        "defaults.retry.max_attempts:",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
}

#[test]
fn unknown_fields_and_wrong_types_name_their_path() {
    let mut t = good();
    t["deployments"]["llama"]["max_tokens"] = json!(5);
    let errs = errors_of(&t);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("deployments.llama.max_tokens: unknown field `max_tokens`"),
        "{errs:?}"
    );

    let mut t = good();
    t["routes"]["workhorse"]["chain"] = json!("gpt-mini");
    assert!(
        errors_of(&t)[0].starts_with("routes.workhorse.chain: invalid type"),
        "{:?}",
        errors_of(&t)
    );
}

#[test]
fn malformed_or_incomplete_documents_are_rejected() {
    assert!(parse_table("{").unwrap_err()[0].starts_with("invalid routing table JSON"));
    assert!(parse_table("[]").is_err());
    let mut t = good();
    t["version"] = json!(2);
    assert!(errors_of(&t)[0].starts_with("version: unsupported version 2"));
    let mut t = good();
    t.as_object_mut().unwrap().remove("routes");
    assert!(errors_of(&t)[0].contains("missing field `routes`"));
    let mut t = good();
    t["routes"] = json!({});
    assert!(errors_of(&t)
        .iter()
        .any(|e| e.starts_with("routes: must define at least one route")));
}

#[test]
fn secrets_and_headers_are_checked() {
    let mut t = good();
    t["providers"]["openai"]["api_key_secret"] = json!("sk-live-123");
    t["providers"]["openai"]["headers"] = json!({"x-bad": "a\r\nInjected: 1", "bad name": "v"});
    t["providers"]["mock"]["base_url"] = json!("https://x");
    let errs = errors_of(&t);
    for e in [
        "providers.openai.api_key_secret: must be a Worker secret name",
        "providers.openai.headers.x-bad: header value must not contain CR, LF or NUL",
        "providers.openai.headers.bad name: not a valid header name",
        "providers.mock.base_url: only allowed for kind",
    ] {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
}

#[test]
fn a_bad_route_retry_is_reported_once() {
    let mut t = good();
    t["routes"]["workhorse"]["retry"] = json!({"max_attempts": 0});
    let errs = errors_of(&t);
    assert_eq!(
        errs.iter()
            .filter(|e| e.starts_with("routes.workhorse.retry.max_attempts"))
            .count(),
        1,
        "{errs:#?}"
    );
}
