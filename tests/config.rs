//! Routing-table validation: good tables become typed config; bad ones are rejected with every
//! problem named by its JSON path.

use edge_router::config::{parse, parse_table, Problem, ProviderKind, EMBEDDED_DEFAULT};
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
    // No cache prices given: cache reads and writes cost the input price (as before).
    assert_eq!(mini.price.cached_input_nanos_per_mtok, 150_000_000);
    assert_eq!(mini.price.cache_write_nanos_per_mtok, 150_000_000);
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
fn cache_prices_are_read_and_checked() {
    let mut t = good();
    t["deployments"]["gpt-mini"]["price"] = json!({
        "input_per_mtok_usd": 3, "output_per_mtok_usd": 15,
        "cached_input_per_mtok_usd": "0.30", "cache_write_per_mtok_usd": 3.75
    });
    let table = parse_table(&t.to_string()).unwrap();
    let mini = table
        .deployment(table.route("workhorse").unwrap().chain.steps()[0].deployment)
        .unwrap();
    assert_eq!(mini.price.cached_input_nanos_per_mtok, 300_000_000);
    assert_eq!(mini.price.cache_write_nanos_per_mtok, 3_750_000_000);
    t["deployments"]["gpt-mini"]["price"]["cached_input_per_mtok_usd"] = json!("-1");
    let errs = errors_of(&t);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("deployments.gpt-mini.price.cached_input_per_mtok_usd:")),
        "{errs:?}"
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

/// The routing additions: tags, strategies, weighted entries, required tags, canary, sticky,
/// and the `tasks` block.
fn routing_table() -> Value {
    let mut t = good();
    t["deployments"]["gpt-mini"]["tags"] = json!(["eu", "zdr"]);
    t["deployments"]["llama"]["tags"] = json!(["eu"]);
    t["routes"]["weighted"] = json!({
        "strategy": "weighted",
        "chain": [{"deployment": "gpt-mini", "weight": 3}, "llama", {"deployment": "m", "weight": 0}],
        "canary": {"deployment": "m", "percent_bps": 500},
        "sticky": {"ttl_ms": 600000}
    });
    t["routes"]["eu"] = json!({"chain": ["llama", "gpt-mini"], "strategy": "cheapest",
                               "require_tags": ["eu"], "canary": {"deployment": "gpt-mini", "percent_bps": 10000}});
    t["routes"]["zdr"] =
        json!({"chain": ["gpt-mini"], "canary": {"deployment": "llama", "percent_bps": 0}});
    t["tasks"] = json!({
        "default": "chat",
        "routes": {"chat": "workhorse", "code": "local-first", "translate": "eu"},
        "rules": [
            {"name": "long", "when": {"min_prompt_tokens": 8000}, "task": "code"},
            {"name": "translate", "when": {"last_user_matches": "(?i)\\btranslate\\b"}, "task": "translate"},
            {"name": "team", "when": {"header": {"X-Team": "search"}, "model": ["auto"],
              "path": "/v1/chat/completions", "tools": false, "json": true, "max_prompt_tokens": 4000},
             "task": "code"}
        ]
    });
    t
}

#[test]
fn routing_additions_validate_into_typed_config() {
    use edge_router::config::Strategy;
    let t = parse_table(&routing_table().to_string()).unwrap();
    let dep = |name: &str| t.deployments.iter().position(|d| d.name == name).unwrap();
    assert_eq!(t.deployment(dep("gpt-mini")).unwrap().tags, ["eu", "zdr"]);
    assert!(t.deployment(dep("m")).unwrap().tags.is_empty());

    let w = t.route("weighted").unwrap();
    assert_eq!(w.strategy, Strategy::Weighted);
    let weights: Vec<u32> = w.chain.steps().iter().map(|s| s.weight).collect();
    assert_eq!(weights, [3, 1, 0]);
    assert_eq!(w.canary.unwrap().deployment, dep("m"));
    assert_eq!(w.canary.unwrap().percent_bps, 500);
    assert_eq!(w.sticky_ttl_ms, Some(600_000));
    assert!(
        w.chain.steps().iter().all(|s| !s.canary_only),
        "canary in the chain"
    );

    let eu = t.route("eu").unwrap();
    assert_eq!(eu.strategy, Strategy::Cheapest);
    assert_eq!(eu.require_tags, ["eu"]);
    // A canary outside the chain becomes a canary-only step at its end.
    let zdr = t.route("zdr").unwrap();
    let steps = zdr.chain.steps();
    assert_eq!(steps.len(), 2);
    assert!(!steps[0].canary_only && steps[1].canary_only);
    assert_eq!((steps[1].deployment, steps[1].weight), (dep("llama"), 0));
    assert_eq!(steps[1].retry.max_attempts, 3, "the usual retry layering");

    // Old tables: every new field has its default.
    let plain = t.route("workhorse").unwrap();
    assert_eq!(plain.strategy, Strategy::Ordered);
    assert!(plain
        .chain
        .steps()
        .iter()
        .all(|s| s.weight == 1 && !s.canary_only));
    assert!(
        plain.require_tags.is_empty() && plain.canary.is_none() && plain.sticky_ttl_ms.is_none()
    );
    assert!(parse_table(&good().to_string()).unwrap().tasks.is_none());

    let tasks = t.tasks.as_ref().unwrap();
    assert_eq!(tasks.default.as_deref(), Some("chat"));
    assert_eq!(tasks.route_of("translate"), Some("eu"));
    assert_eq!(tasks.rules.len(), 3);
    let team = &tasks.rules[2].when;
    assert_eq!(team.headers, [("x-team".to_string(), "search".to_string())]);
    assert_eq!(team.models.as_deref(), Some(&["auto".to_string()][..]));
    assert_eq!((team.tools, team.json), (Some(false), Some(true)));
    let translate = tasks.rules[1].when.last_user_matches.as_ref().unwrap();
    assert!(translate.is_match("please Translate this") && !translate.is_match("translation"));
}

#[test]
fn routing_additions_report_errors_with_paths() {
    let mut t = routing_table();
    t["deployments"]["llama"]["tags"] = json!(["eu", "eu", ""]);
    t["routes"]["weighted"]["strategy"] = json!("random");
    t["routes"]["weighted"]["canary"] = json!({"deployment": "gpt5", "percent_bps": 10001});
    t["routes"]["weighted"]["sticky"] = json!({"ttl_ms": 0});
    t["routes"]["weighted"]["chain"][0]["weight"] = json!(10001);
    t["routes"]["eu"]["require_tags"] = json!(["zdr"]);
    t["routes"]["eu"]["canary"]["deployment"] = json!("m");
    t["routes"]["zdr"]["require_tags"] = json!(["nowhere"]);
    t["tasks"]["default"] = json!("poetry");
    t["tasks"]["routes"]["bad"] = json!("no-such-route");
    t["tasks"]["rules"][0]["task"] = json!("unknown-task");
    t["tasks"]["rules"][1]["when"]["last_user_matches"] = json!("(unclosed");
    t["tasks"]["rules"][2]["when"]["header"] = json!({"bad name": "x"});
    t["tasks"]["rules"][2]["when"]["min_prompt_tokens"] = json!(5000);
    t["tasks"]["rules"][2]["when"]["model"] = json!([]);
    t["tasks"]["rules"][2]["when"]["path"] = json!("v1/chat");
    t["tasks"]["rules"][2]["name"] = json!("long");
    let errs = errors_of(&t);
    for e in [
        "deployments.llama.tags[1]: tag \"eu\" appears twice",
        "deployments.llama.tags[2]: a tag is 1-64 characters",
        "routes.weighted.strategy: \"random\" is not one of \"ordered\", \"weighted\", \"cheapest\", \"fastest\", \"least_used\"",
        "routes.weighted.canary.deployment: unknown deployment \"gpt5\" (known: ",
        "routes.weighted.canary.percent_bps: must be between 0 and 10000",
        "routes.weighted.sticky.ttl_ms: must be between 1 and 86400000 ms",
        "routes.weighted.chain[0].weight: must be between 0 and 10000",
        "routes.eu.canary.deployment: deployment \"m\" lacks a required tag (zdr)",
        "routes.zdr.require_tags: no deployment of the chain has every required tag",
        "routes.zdr.canary.deployment: deployment \"llama\" lacks a required tag (nowhere)",
        "tasks.default: unknown task \"poetry\" (known: ",
        "tasks.routes.bad: unknown route \"no-such-route\" (known: ",
        "tasks.rules[0].task: unknown task \"unknown-task\"",
        "tasks.rules[1].when.last_user_matches: invalid regular expression",
        "tasks.rules[2].when.header.bad name: not a valid header name",
        "tasks.rules[2].when.max_prompt_tokens: must not be below min_prompt_tokens",
        "tasks.rules[2].when.model: must list at least one model name",
        "tasks.rules[2].when.path: must start with /",
        "tasks.rules[2].name: rule \"long\" appears twice",
    ] {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 19, "{errs:#?}");
}

#[test]
fn routing_additions_reject_bad_shapes() {
    let cases = [
        (
            json!({"deployment": "m", "wieght": 2}),
            "routes.workhorse.chain[0].wieght: unknown field `wieght`",
        ),
        (
            json!({"deployment": "m", "weight": 1.5}),
            "routes.workhorse.chain[0].weight: invalid type: floating point `1.5`",
        ),
        (
            json!({"deployment": "m", "weight": -1}),
            "routes.workhorse.chain[0].weight: invalid value: integer `-1`",
        ),
        (
            json!(5),
            "routes.workhorse.chain[0]: invalid type: integer `5`, expected a deployment name or",
        ),
    ];
    for (entry, expected) in cases {
        let mut t = good();
        t["routes"]["workhorse"]["chain"][0] = entry;
        let errs = errors_of(&t);
        assert!(errs[0].starts_with(expected), "{errs:?}");
    }
    let mut t = routing_table();
    t["routes"]["weighted"]["chain"] = json!([{"deployment": "m", "weight": 0}]);
    assert!(errors_of(&t)[0].starts_with("routes.weighted.chain: strategy \"weighted\" needs"));
    let mut t = routing_table();
    t["routes"]["weighted"]["canary"] = json!({"deployment": "m", "percent": 5});
    let e = errors_of(&t);
    assert!(
        e[0].starts_with("routes.weighted.canary.percent: unknown field `percent`"),
        "{e:?}"
    );
    let mut t = routing_table();
    t["tasks"]["rules"][0]["when"]["images"] = json!("yes");
    assert!(errors_of(&t)[0].starts_with("tasks.rules[0].when.images: invalid type"));
    let mut t = routing_table();
    t["tasks"]["rules"][0]["when"]["header"] = json!({"X-A": "1", "x-a": "2"});
    assert!(errors_of(&t)
        .iter()
        .any(|e| e.contains("header named twice")));
}

/// The README's task-routing example (with providers added) is a valid table, and classifies
/// and plans as the README says.
#[test]
fn readme_task_routing_example_is_valid() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("## Task routing and strategies")
        .expect("section");
    let block = &readme[start..];
    let open = block.find("```json\n").expect("json block") + "```json\n".len();
    let close = open + block[open..].find("\n```").expect("end of block");
    let mut t: Value = serde_json::from_str(&block[open..close]).expect("README JSON parses");
    t["version"] = json!(1);
    t["providers"] = json!({
        "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key_secret": "OPENAI_API_KEY"},
        "groq": {"kind": "openai", "base_url": "https://api.groq.com/openai/v1", "api_key_secret": "GROQ_API_KEY"},
        "anthropic": {"kind": "anthropic", "api_key_secret": "ANTHROPIC_API_KEY"}
    });
    let table = parse_table(&t.to_string()).unwrap_or_else(|e| panic!("{e:?}"));
    let tasks = table.tasks.as_ref().expect("tasks");
    assert_eq!(tasks.route_of("code"), Some("strong"));
    assert_eq!(tasks.rules.len(), 4);
}

/// The README's complete routing-table example is a valid table (its `limits` included).
#[test]
fn readme_complete_example_is_valid() {
    let readme = include_str!("../README.md");
    let start = readme.find("## The routing table").expect("section");
    let block = &readme[start..];
    let open = block.find("```json\n").expect("json block") + "```json\n".len();
    let close = open + block[open..].find("\n```").expect("end of block");
    let table = parse_table(&block[open..close]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(table.limits.subrequests, 50);
    assert_eq!(table.routes.len(), 2);
}

/// Serde's derived structs also read a JSON array, field by field (`"retry": [7, 100, 1000,
/// 5000]` would mean `max_attempts` 7, …); the table accepts objects only, at every level.
#[test]
fn objects_are_never_read_from_arrays() {
    let cases = [
        ("defaults", json!([{}, {}, null, {}, null])),
        ("defaults.retry", json!([7, 100, 1000, 5000])),
        ("defaults.timeouts", json!([5000, 20000, 20000, 60000])),
        (
            "defaults.breaker",
            json!([true, 5, 5000, 10, 60000, 10000, 60000, 1, null, true]),
        ),
        (
            "providers.mock",
            json!(["mock", null, null, {}, null, null, null, null, null, null]),
        ),
        ("providers.mock.mock", json!([503, null, 10, null, null])),
        (
            "deployments.m",
            json!(["mock", "m1", 1000, null, {}, {}, {}, {}, {}, []]),
        ),
        ("deployments.gpt-mini.price", json!([0.15, "0.60"])),
        ("deployments.gpt-mini.timeouts", json!([1, 2, 3, 4])),
        ("deployments.gpt-mini.retry", json!([2])),
        ("deployments.m.capabilities", json!([true, false])),
        ("deployments.m.breaker", json!([])),
        ("deployments.m.limits", json!([500, 200000])),
        ("routes.workhorse", json!([["m"], null, [], null, null])),
        ("routes.workhorse.retry", json!([1, 10, 100, 1000])),
        ("routes.weighted.canary", json!(["m", 500])),
        ("routes.weighted.sticky", json!([600000])),
        ("routes.weighted.hedge", json!([2000])),
        ("tasks", json!([null, {}, []])),
        ("limits", json!([12])),
        ("cors", json!([["https://a.example"]])),
        ("tasks.rules[0]", json!(["long", {}, "code"])),
        (
            "tasks.rules[0].when",
            json!([8000, null, null, null, null, null, {}, null, null]),
        ),
    ];
    for (path, positional) in cases {
        let mut t = routing_table();
        t["defaults"]["breaker"] = json!({});
        t["deployments"]["m"]["breaker"] = json!({});
        t["deployments"]["m"]["capabilities"] = json!({});
        t["deployments"]["m"]["limits"] = json!({});
        t["routes"]["weighted"]["hedge"] = json!({"after_ms": 2000});
        t["limits"] = json!({"subrequests": 100});
        t["cors"] = json!({"allow_origins": ["https://a.example"]});
        parse_table(&t.to_string()).unwrap_or_else(|e| panic!("base table: {e:?}"));
        let pointer = format!("/{}", path.replace('.', "/").replace("[0]", "/0"));
        *t.pointer_mut(&pointer).expect(path) = positional;
        let errs = errors_of(&t);
        let want = format!("{path}: invalid type: sequence, expected a JSON object");
        assert!(errs[0].starts_with(&want), "{path}: {errs:?}");
    }
    // The table itself, and a weighted chain entry (never accepted as an array).
    let errs = parse_table(r#"[1, {}, {"m": {"kind": "mock"}}, {}, {}, null]"#).unwrap_err();
    assert!(
        errs[0].starts_with(
            "invalid routing table JSON: invalid type: sequence, expected a JSON object"
        ),
        "{errs:?}"
    );
    let mut t = good();
    t["routes"]["workhorse"]["chain"][0] = json!(["m", 2]);
    let errs = errors_of(&t);
    assert!(
        errs[0].starts_with("routes.workhorse.chain[0]: invalid type: sequence"),
        "{errs:?}"
    );
}

#[test]
fn cors_origins_are_exact_origins_or_a_star() {
    let mut t = good();
    t["cors"] = json!({"allow_origins": ["https://app.example", "http://localhost:5173", "*"]});
    let table = parse_table(&t.to_string()).unwrap();
    assert_eq!(table.cors_origins.len(), 3);
    for bad in [
        "https://app.example/",
        "app.example",
        "https://a b",
        "ftp://x",
    ] {
        t["cors"] = json!({"allow_origins": [bad]});
        let errs = errors_of(&t);
        assert!(
            errs.iter().any(|e| e.starts_with("cors.allow_origins[0]:")),
            "{bad}: {errs:?}"
        );
    }
    t.as_object_mut().unwrap().remove("cors");
    assert!(parse_table(&t.to_string()).unwrap().cors_origins.is_empty());
}

#[test]
fn problems_are_values_and_the_text_form_is_rendered_from_them() {
    let mut t = good();
    t["deployments"]["llama"]["provider"] = json!("nope");
    t["routes"]["workhorse"]["retry"] = json!({"max_attempts": 0});
    let text = t.to_string();
    let problems = parse(&text).unwrap_err();
    assert!(
        problems.contains(&Problem::at(
            "routes.workhorse.retry.max_attempts",
            "must be between 1 and 10"
        )),
        "{problems:?}"
    );
    assert!(problems
        .iter()
        .any(|p| p.path == "deployments.llama.provider"
            && p.message.starts_with("unknown provider \"nope\"")));
    let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(parse_table(&text).unwrap_err(), rendered);
    assert!(rendered.iter().all(|r| r.contains(": ")));
}

#[test]
fn problems_serialize_as_the_admin_api_shows_them() {
    let problems = parse(r#"{"version": 1, "routes": }"#).unwrap_err();
    let wire = serde_json::to_value(&problems).unwrap();
    assert_eq!(wire.as_array().map(Vec::len), Some(1), "{wire}");
    assert_eq!(wire[0]["path"], "");
    assert!(wire[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON: "));
    assert_eq!(
        wire[0].as_object().unwrap().len(),
        2,
        "only path and message"
    );
    assert!(parse_table(r#"{"version": 1, "routes": }"#).unwrap_err()[0]
        .starts_with("invalid routing table JSON: "));

    let mut t = good();
    t["routes"]["local-first"]["chain"] = json!([]);
    let wire = serde_json::to_value(parse(&t.to_string()).unwrap_err()).unwrap();
    assert_eq!(
        wire,
        json!([{"path": "routes.local-first.chain", "message": "must list at least one deployment"}])
    );
}

#[test]
fn a_hedge_is_a_fixed_delay_or_the_measured_p95_within_a_floor_and_cap() {
    let with = |hedge: Value| {
        let mut t = good();
        t["routes"]["workhorse"]["hedge"] = hedge;
        t
    };
    let t =
        parse_table(&with(json!({"after": "p95", "floor_ms": 200, "cap_ms": 3000})).to_string())
            .unwrap();
    let r = t.route("workhorse").unwrap();
    assert_eq!(
        (r.hedge_after_ms, r.hedge_p95_cap_ms),
        (Some(200), Some(3000))
    );
    assert_eq!(r.hedge_delay_ms(Some(800)), Some(800));
    assert_eq!(r.hedge_delay_ms(None), Some(200));
    let t = parse_table(&with(json!({"after": "p95"})).to_string()).unwrap();
    let r = t.route("workhorse").unwrap();
    assert_eq!(
        (r.hedge_after_ms, r.hedge_p95_cap_ms),
        (Some(250), Some(10_000))
    );
    let t = parse_table(&with(json!({"after_ms": 700})).to_string()).unwrap();
    assert_eq!(
        t.route("workhorse").unwrap().hedge_delay_ms(Some(5)),
        Some(700)
    );
    for (hedge, want) in [
        (
            json!({"after": "p99"}),
            "routes.workhorse.hedge.after: \"p99\" is not \"p95\"",
        ),
        (json!({"after": "p95", "after_ms": 3}), "exclude each other"),
        (json!({}), "a hedge needs after_ms or after"),
        (
            json!({"after": "p95", "floor_ms": 900, "cap_ms": 100}),
            "must not be below floor_ms",
        ),
        (json!({"after_ms": 300, "cap_ms": 100}), "go with after"),
    ] {
        let errs = errors_of(&with(hedge.clone()));
        assert!(errs.iter().any(|e| e.contains(want)), "{hedge}: {errs:?}");
    }
}
