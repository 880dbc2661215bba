//! Classification: every rule condition, and the precedence
//! header > metadata > rule > route named as model > default.

use super::classify::*;
use crate::api::parse_chat_request;
use crate::config::{parse_table, RoutingTable};
use serde_json::{json, Value};
use std::borrow::Cow;

fn table_with(tasks: Value) -> RoutingTable {
    let mut t = json!({
        "version": 1,
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {"d": {"provider": "mock", "model": "m", "context_window": 1000}},
        "routes": {
            "workhorse": {"chain": ["d"]}, "strong": {"chain": ["d"]},
            "cheap": {"chain": ["d"]}, "long": {"chain": ["d"]}, "vision": {"chain": ["d"]}
        },
    });
    if !tasks.is_null() {
        t["tasks"] = tasks;
    }
    parse_table(&t.to_string()).unwrap()
}

fn table() -> RoutingTable {
    table_with(json!({
        "default": "chat",
        "routes": {"chat": "workhorse", "code": "strong", "translate": "cheap",
                   "long": "long", "vision": "vision"},
        "rules": [
            {"name": "long-context", "when": {"min_prompt_tokens": 8000}, "task": "long"},
            {"name": "vision", "when": {"images": true}, "task": "vision"},
            {"name": "translate", "when": {"last_user_matches": "(?i)\\btranslate\\b"}, "task": "translate"},
            {"name": "team-search", "when": {"header": {"X-Team": "search"}, "model": ["auto"],
              "path": "/v1/chat/completions", "tools": false, "json": true, "max_prompt_tokens": 4000},
             "task": "code"}
        ]
    }))
}

fn facts<'a>(model: &'a str, headers: &'a [(String, String)]) -> RequestFacts<'a> {
    RequestFacts {
        model,
        path: "/v1/chat/completions",
        headers,
        metadata_task: None,
        prompt_tokens: 100,
        tools: false,
        images: false,
        json: false,
        last_user: Cow::Borrowed("hello"),
    }
}

fn h(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

fn route_and_source(t: &RoutingTable, f: &RequestFacts) -> (String, String) {
    let c = classify(t, f).unwrap();
    (c.route, c.source.to_string())
}

fn rs(route: &str, source: &str) -> (String, String) {
    (route.to_string(), source.to_string())
}

#[test]
fn each_condition_matches_and_misses() {
    let t = table();
    let none: Vec<(String, String)> = vec![];
    let team = h("x-team", "search");

    let mut f = facts("auto", &none);
    assert_eq!(route_and_source(&t, &f), rs("workhorse", "default"));
    f.prompt_tokens = 8000;
    assert_eq!(route_and_source(&t, &f), rs("long", "rule:long-context"));
    f.prompt_tokens = 7999;
    f.images = true;
    assert_eq!(route_and_source(&t, &f), rs("vision", "rule:vision"));
    f.images = false;
    f.last_user = Cow::Borrowed("Please TRANSLATE this");
    assert_eq!(route_and_source(&t, &f), rs("cheap", "rule:translate"));
    f.last_user = Cow::Borrowed("translated"); // \b: not the whole word
    assert_eq!(route_and_source(&t, &f), rs("workhorse", "default"));

    // team-search: every condition must hold.
    let mut f = facts("auto", &team);
    f.json = true;
    assert_eq!(route_and_source(&t, &f), rs("strong", "rule:team-search"));
    let misses: [fn(&mut RequestFacts); 6] = [
        |f| f.json = false,
        |f| f.tools = true,
        |f| f.prompt_tokens = 4001,
        |f| f.path = "/v1/messages",
        |f| f.model = "other",
        |f| f.headers = &[],
    ];
    for (i, miss) in misses.iter().enumerate() {
        let mut g = f.clone();
        miss(&mut g);
        assert_ne!(
            classify(&t, &g).unwrap().task.as_deref(),
            Some("code"),
            "miss #{i}"
        );
    }
    let wrong_value = h("x-team", "Search");
    let mut g = f.clone();
    g.headers = &wrong_value;
    assert_ne!(
        classify(&t, &g).unwrap().route,
        "strong",
        "values are exact"
    );
    // Header names from the caller may come in any case.
    let upper = h("X-TEAM", "search");
    let mut g = f.clone();
    g.headers = &upper;
    assert_eq!(classify(&t, &g).unwrap().route, "strong");
}

#[test]
fn precedence_header_metadata_rule_model_default() {
    let t = table();
    let none: Vec<(String, String)> = vec![];
    let task_hdr = h("x-task", "translate");

    // A route name as model: no default task forced on it.
    let f = facts("strong", &none);
    assert_eq!(route_and_source(&t, &f), rs("strong", "model"));
    // ...but a rule without a model list applies to it.
    let mut f = facts("strong", &none);
    f.images = true;
    assert_eq!(route_and_source(&t, &f), rs("vision", "rule:vision"));
    // Metadata beats the rule.
    f.metadata_task = Some("code");
    assert_eq!(route_and_source(&t, &f), rs("strong", "metadata"));
    // The header beats metadata.
    f.headers = &task_hdr;
    let c = classify(&t, &f).unwrap();
    assert_eq!(c.task.as_deref(), Some("translate"));
    assert_eq!((c.route.as_str(), c.source), ("cheap", Source::Header));
    // An unknown model with no tasks block is today's behaviour: the model is the route.
    let plain = table_with(Value::Null);
    assert_eq!(
        route_and_source(&plain, &facts("nope", &none)),
        rs("nope", "model")
    );
    // No default: an unknown model stays the route (the caller answers 404).
    let no_default = table_with(json!({"routes": {"chat": "workhorse"}}));
    assert_eq!(
        route_and_source(&no_default, &facts("auto", &none)),
        rs("auto", "model")
    );
    // A rule listing models does not apply to other requested models.
    let f = facts("workhorse", &none);
    let only_auto = table_with(json!({"routes": {"code": "strong"},
        "rules": [{"name": "r", "when": {"model": ["auto"]}, "task": "code"}]}));
    assert_eq!(route_and_source(&only_auto, &f), rs("workhorse", "model"));
    assert_eq!(
        route_and_source(&only_auto, &facts("auto", &none)),
        rs("strong", "rule:r")
    );
}

#[test]
fn unknown_task_from_header_or_metadata_is_an_error() {
    let t = table();
    let bad = h("x-task", "poetry");
    let e = classify(&t, &facts("auto", &bad)).unwrap_err();
    assert!(
        e.contains("x-task") && e.contains("\"poetry\"") && e.contains("\"chat\""),
        "{e}"
    );
    let none: Vec<(String, String)> = vec![];
    let mut f = facts("auto", &none);
    f.metadata_task = Some("poetry");
    assert!(classify(&t, &f).unwrap_err().starts_with("metadata.task"));
    let plain = table_with(Value::Null);
    assert!(classify(&plain, &facts("workhorse", &bad))
        .unwrap_err()
        .contains("no tasks are configured"));
    // Empty values count as absent.
    let empty = h("x-task", " ");
    assert_eq!(
        route_and_source(&t, &facts("auto", &empty)),
        rs("workhorse", "default")
    );
}

#[test]
fn facts_from_a_chat_request() {
    let req = parse_chat_request(
        json!({"model": "auto", "metadata": {"task": "code"},
               "tools": [{"type": "function", "function": {"name": "f"}}],
               "response_format": {"type": "json_object"},
               "messages": [
                   {"role": "user", "content": "first"},
                   {"role": "assistant", "content": "ok"},
                   {"role": "user", "content": [
                       {"type": "text", "text": "translate"},
                       {"type": "image_url", "image_url": {"url": "data:,"}},
                       {"type": "text", "text": "this"}]}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let headers = h("x-team", "search");
    let f = RequestFacts::from_request(&req, "/v1/chat/completions", &headers);
    assert_eq!(f.model, "auto");
    assert_eq!(f.metadata_task, Some("code"));
    assert!(f.tools && f.images && f.json);
    assert_eq!(f.last_user, "translate this");
    // "first" + "ok" + "translate" + "this" = 5 + 2 + 9 + 4 = 20 chars → 5 tokens
    assert_eq!(f.prompt_tokens, 5);
    assert_eq!(f.header("X-Team"), Some("search"));
    let c = classify(&table(), &f).unwrap();
    assert_eq!((c.route.as_str(), c.source), ("strong", Source::Metadata));

    let long = "é".repeat(MAX_MATCHED_BYTES); // 2 bytes each
    let req = parse_chat_request(
        json!({"model": "m", "messages": [{"role": "user", "content": long}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let f = RequestFacts::from_request(&req, "/", &[]);
    assert_eq!(f.last_user.len(), MAX_MATCHED_BYTES);
    assert!(matches!(f.last_user, Cow::Borrowed(_)));
    assert_eq!(f.metadata_task, None);
}
