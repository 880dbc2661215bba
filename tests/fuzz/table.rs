//! Target 2: the routing-table parser, over valid, known-invalid and randomly mutated tables.

use crate::gen::{mutate_bytes, mutate_value, text, to_bytes, valid_name};
use crate::harness::{fuzz, Rng};
use edge_router::config::{parse_table, RoutingTable, EMBEDDED_DEFAULT};
use edge_router::resilience::subrequests::MIN_SUBREQUESTS;
use serde_json::{json, Map, Value};

/// A table that uses every feature of the format.
fn rich_table() -> Value {
    json!({
        "version": 1,
        "defaults": {
            "retry": {"max_attempts": 3, "backoff_base_ms": 100, "backoff_max_ms": 1000, "max_retry_after_ms": 5000},
            "timeouts": {"connect_ms": 5000, "first_token_ms": 20000, "idle_ms": 20000, "attempt_ms": 60000},
            "request_timeout_ms": 120000,
            "breaker": {"enabled": true, "consecutive_failures": 5, "failure_rate_bps": 5000, "min_requests": 10,
                        "window_ms": 60000, "cooldown_ms": 10000, "cooldown_max_ms": 60000, "half_open_probes": 1,
                        "count": ["server_error", "overloaded"], "cron_probe": true},
            "estimated_output_tokens": 500
        },
        "providers": {
            "oai": {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key_secret": "OPENAI_API_KEY",
                    "headers": {"OpenAI-Organization": "org-1"}, "stream_usage": true,
                    "max_tokens_field": "max_completion_tokens", "prefill": "none"},
            "ant": {"kind": "anthropic", "api_key_secret": "ANTHROPIC_API_KEY", "anthropic_version": "2023-06-01",
                    "max_tokens_default": 8192, "prefill": "assistant"},
            "gem": {"kind": "gemini", "api_key_secret": "GEMINI_API_KEY"},
            "mock": {"kind": "mock", "mock": {"latency_ms": 5, "chunk_delay_ms": 1, "cut_after_chunks": 3}}
        },
        "deployments": {
            "gpt": {"provider": "oai", "model": "gpt-4o-mini", "context_window": 128000,
                    "price": {"input_per_mtok_usd": 0.15, "output_per_mtok_usd": "0.60"},
                    "timeouts": {"first_token_ms": 8000}, "retry": {"max_attempts": 2},
                    "capabilities": {"vision": false}, "breaker": {"consecutive_failures": 3},
                    "limits": {"rpm": 500, "tpm": 200000}, "tags": ["us", "zdr"]},
            "claude": {"provider": "ant", "model": "claude-haiku-4-5", "context_window": 200000,
                       "price": {"input_per_mtok_usd": 1, "output_per_mtok_usd": 5}, "tags": ["eu", "zdr"]},
            "gemini": {"provider": "gem", "model": "gemini-2.5-flash", "context_window": 1000000, "tags": ["eu"]},
            "mock": {"provider": "mock", "model": "mock-1", "context_window": 16000}
        },
        "routes": {
            "main": {"chain": ["gpt", {"deployment": "claude", "weight": 3}, "gemini"], "strategy": "weighted",
                     "canary": {"deployment": "mock", "percent_bps": 500}, "sticky": {"ttl_ms": 600000},
                     "hedge": {"after_ms": 2000}, "retry": {"max_attempts": 1}, "request_timeout_ms": 90000,
                     "fallback_on_content_policy": true, "description": "primary", "resume": "prefill",
                     "max_resumes": 3},
            "eu": {"chain": ["claude", "gemini"], "require_tags": ["eu"], "strategy": "cheapest", "resume": "off"},
            "cheap": {"chain": ["mock"], "strategy": "least_used"}
        },
        "limits": {"subrequests": 200},
        "tasks": {
            "default": "chat",
            "routes": {"chat": "main", "private": "eu", "test": "cheap"},
            "rules": [
                {"name": "long", "when": {"min_prompt_tokens": 1000, "max_prompt_tokens": 100000, "images": false,
                  "tools": true, "json": false, "last_user_matches": "(?i)translate|übersetze",
                  "header": {"X-Tenant": "acme"}, "model": ["auto"], "path": "/v1/chat/completions"},
                 "task": "private"},
                {"name": "default-test", "task": "test"}
            ]
        }
    })
}

fn base_table(rng: &mut Rng) -> Value {
    if rng.one_in(2) {
        rich_table()
    } else {
        serde_json::from_str(EMBEDDED_DEFAULT).expect("embedded table is JSON")
    }
}

fn obj<'a>(v: &'a mut Value, k: &str) -> &'a mut Map<String, Value> {
    v.get_mut(k)
        .and_then(Value::as_object_mut)
        .expect("object field")
}

fn keys_of(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn pick_key(rng: &mut Rng, v: &Value, k: &str) -> String {
    let keys = keys_of(v, k);
    keys[rng.below(keys.len())].clone()
}

fn unused_name(rng: &mut Rng, taken: &[String]) -> String {
    loop {
        let n = valid_name(rng);
        if !taken.contains(&n) {
            return n;
        }
    }
}

/// A mutation after which the table is still valid.
fn valid_table_mutation(rng: &mut Rng, t: &mut Value) {
    match rng.below(8) {
        0 => {
            let r = pick_key(rng, t, "routes");
            obj(t, "routes")[&r]["description"] = Value::String(text(rng));
        }
        1 => {
            let d = pick_key(rng, t, "deployments");
            let n = rng.range(1, u32::MAX as usize);
            obj(t, "deployments")[&d]["context_window"] = json!(n);
        }
        2 => {
            let d = pick_key(rng, t, "deployments");
            obj(t, "deployments")[&d]["model"] = Value::String(format!("m{}", text(rng)));
        }
        3 => {
            // Rename a deployment everywhere it is referenced.
            let old = pick_key(rng, t, "deployments");
            let new = unused_name(rng, &keys_of(t, "deployments"));
            let d = obj(t, "deployments").remove(&old).expect("exists");
            obj(t, "deployments").insert(new.clone(), d);
            for route in obj(t, "routes").values_mut() {
                if let Some(Value::Array(chain)) = route.get_mut("chain") {
                    for e in chain {
                        if e.as_str() == Some(old.as_str()) {
                            *e = Value::String(new.clone());
                        } else if e["deployment"].as_str() == Some(old.as_str()) {
                            e["deployment"] = Value::String(new.clone());
                        }
                    }
                }
                if route.pointer("/canary/deployment").and_then(Value::as_str) == Some(&old) {
                    route["canary"]["deployment"] = Value::String(new.clone());
                }
            }
        }
        4 => {
            let r = pick_key(rng, t, "routes");
            obj(t, "routes")[&r]["retry"] = json!({"max_attempts": rng.range(1, 10)});
        }
        5 => {
            // A new (chat) route over distinct existing chat deployments.
            let mut deps: Vec<String> = keys_of(t, "deployments")
                .into_iter()
                .filter(|d| t["deployments"][d].get("embedding").is_none())
                .collect();
            let mut chain = Vec::new();
            for _ in 0..rng.range(1, deps.len()) {
                chain.push(Value::String(deps.remove(rng.below(deps.len()))));
            }
            let name = unused_name(rng, &keys_of(t, "routes"));
            obj(t, "routes").insert(name, json!({ "chain": chain }));
        }
        6 => {
            let d = pick_key(rng, t, "deployments");
            let whole = rng.below(1_000_001);
            let digits = rng.below(10);
            let frac: String = (0..digits)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            let price = if frac.is_empty() || whole == 1_000_000 {
                json!(whole.to_string())
            } else {
                json!(format!("{whole}.{frac}"))
            };
            obj(t, "deployments")[&d]["price"] =
                json!({"input_per_mtok_usd": price, "output_per_mtok_usd": 0});
        }
        _ => {
            let r = pick_key(rng, t, "routes");
            obj(t, "routes")[&r]["sticky"] = json!({"ttl_ms": rng.range(1, 86_400_000)});
        }
    }
}

/// A mutation that makes the table invalid; returns the path an error must start with.
fn invalid_table_mutation(rng: &mut Rng, t: &mut Value) -> String {
    let deps = keys_of(t, "deployments");
    match rng.below(13) {
        12 => {
            // An object given in serde's positional form: its values as an array.
            let paths = struct_paths(t);
            let path = &paths[rng.below(paths.len())];
            let node = node_at(t, path);
            let values = node.as_object().expect("struct").values().cloned();
            *node = Value::Array(values.collect());
            if path.is_empty() {
                "invalid routing table JSON".into()
            } else {
                error_path(path)
            }
        }
        0 => {
            let r = pick_key(rng, t, "routes");
            let unknown = unused_name(rng, &deps);
            let chain = obj(t, "routes")[&r]["chain"].as_array_mut().expect("chain");
            let i = rng.below(chain.len() + 1);
            if rng.one_in(2) {
                chain.insert(i, Value::String(unknown));
            } else {
                chain.insert(i, json!({"deployment": unknown, "weight": 1}));
            }
            format!("routes.{r}.chain[{i}]")
        }
        1 => {
            let d = pick_key(rng, t, "deployments");
            let unknown = unused_name(rng, &keys_of(t, "providers"));
            obj(t, "deployments")[&d]["provider"] = Value::String(unknown);
            format!("deployments.{d}.provider")
        }
        2 => {
            t["version"] = rng.pick(&[json!(2), json!("1"), json!(0), json!(null), json!(1.5)]);
            "version".into()
        }
        3 => {
            let field = format!("x_{}", valid_name(rng));
            match rng.below(5) {
                0 => {
                    obj(t, "defaults").insert(field, json!(1));
                    "defaults".into()
                }
                1 => {
                    let p = pick_key(rng, t, "providers");
                    obj(t, "providers")[&p][field.as_str()] = json!(1);
                    format!("providers.{p}")
                }
                2 => {
                    let d = pick_key(rng, t, "deployments");
                    obj(t, "deployments")[&d][field.as_str()] = json!("x");
                    format!("deployments.{d}")
                }
                3 => {
                    let r = pick_key(rng, t, "routes");
                    obj(t, "routes")[&r][field.as_str()] = json!([]);
                    format!("routes.{r}")
                }
                _ => {
                    t[field.as_str()] = json!({});
                    String::new() // where serde reports unknown top-level fields
                }
            }
        }
        4 => {
            let r = pick_key(rng, t, "routes");
            obj(t, "routes")[&r]["chain"] = json!([]);
            format!("routes.{r}.chain")
        }
        5 => {
            let d = pick_key(rng, t, "deployments");
            let n = rng.pick(&[json!(0), json!(11), json!(u32::MAX)]);
            obj(t, "deployments")[&d]["retry"] = json!({ "max_attempts": n });
            format!("deployments.{d}.retry.max_attempts")
        }
        6 => {
            let field = rng.pick(&["connect_ms", "first_token_ms", "idle_ms", "attempt_ms"]);
            let n = rng.pick(&[json!(0), json!(3_600_001), json!(u64::MAX)]);
            obj(t, "defaults")["timeouts"] = json!({ field: n });
            format!("defaults.timeouts.{field}")
        }
        7 => {
            let d = pick_key(rng, t, "deployments");
            obj(t, "deployments")[&d]["context_window"] = rng.pick(&[json!(-1), json!(0)]);
            format!("deployments.{d}.context_window")
        }
        8 => {
            let k = rng.pick(&["version", "providers", "deployments", "routes"]);
            t.as_object_mut().expect("object").remove(k);
            "invalid routing table JSON".into()
        }
        9 => {
            let r = pick_key(rng, t, "routes");
            let bad = rng.pick(&["bad name", "", "ü", "a\"b", "x\n"]).to_string();
            let bad = if rng.one_in(4) { "a".repeat(129) } else { bad };
            let route = obj(t, "routes").remove(&r).expect("exists");
            obj(t, "routes").insert(bad.clone(), route);
            format!("routes.{bad}")
        }
        10 => {
            let d = pick_key(rng, t, "deployments");
            obj(t, "deployments")[&d]["model"] = json!(rng.pick(&["", "  ", "\t"]));
            format!("deployments.{d}.model")
        }
        _ => {
            let r = pick_key(rng, t, "routes");
            let chain = obj(t, "routes")[&r]["chain"].as_array_mut().expect("chain");
            let first = chain[0].clone();
            let i = chain.len();
            chain.push(first);
            format!("routes.{r}.chain[{i}]")
        }
    }
}

/// One step of a path into a table: an object key or an array index.
#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn node_at<'a>(v: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

/// `routes.main.chain[1]`, as `parse_table` names it.
fn error_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Every node of `t` that the schema reads as a struct (the root included).
fn struct_paths(t: &Value) -> Vec<Vec<Seg>> {
    let key = |k: &str| Seg::Key(k.to_string());
    let mut out = vec![vec![]];
    let objects = |out: &mut Vec<Vec<Seg>>, at: Vec<Seg>, fields: &[&str]| {
        let node = at.iter().fold(t, |v, seg| match seg {
            Seg::Key(k) => &v[k.as_str()],
            Seg::Index(i) => &v[*i],
        });
        for f in fields {
            if node.get(f).is_some_and(Value::is_object) {
                let mut p = at.clone();
                p.push(key(f));
                out.push(p);
            }
        }
    };
    objects(&mut out, vec![], &["defaults", "tasks", "limits", "cors"]);
    objects(
        &mut out,
        vec![key("defaults")],
        &["retry", "timeouts", "breaker"],
    );
    for p in keys_of(t, "providers") {
        out.push(vec![key("providers"), key(&p)]);
        objects(&mut out, vec![key("providers"), key(&p)], &["mock"]);
    }
    for d in keys_of(t, "deployments") {
        out.push(vec![key("deployments"), key(&d)]);
        let fields = [
            "price",
            "timeouts",
            "retry",
            "capabilities",
            "breaker",
            "limits",
        ];
        objects(&mut out, vec![key("deployments"), key(&d)], &fields);
    }
    for r in keys_of(t, "routes") {
        let at = vec![key("routes"), key(&r)];
        out.push(at.clone());
        objects(
            &mut out,
            at.clone(),
            &["canary", "sticky", "hedge", "retry"],
        );
        let chain = t["routes"][&r]["chain"].as_array().into_iter().flatten();
        for (i, e) in chain.enumerate() {
            if e.is_object() {
                let mut p = at.clone();
                p.extend([key("chain"), Seg::Index(i)]);
                out.push(p);
            }
        }
    }
    let rules = t.pointer("/tasks/rules").and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let at = vec![key("tasks"), key("rules"), Seg::Index(i)];
        out.push(at.clone());
        if rule.get("when").is_some_and(Value::is_object) {
            let mut p = at;
            p.push(key("when"));
            out.push(p);
        }
    }
    out
}

const TOP_FIELDS: &[&str] = &[
    "version",
    "defaults",
    "providers",
    "deployments",
    "routes",
    "tasks",
    "limits",
];

/// Every error names where it is: `invalid routing table JSON: …` or `<path>: <message>`, the
/// path rooted at a top-level field (or, for an unknown top-level field, the field itself).
fn check_table_errors(errs: &[String]) {
    assert!(!errs.is_empty(), "Err with no message");
    for e in errs {
        if let Some(rest) = e.strip_prefix("invalid routing table JSON: ") {
            assert!(!rest.is_empty(), "{e:?}");
            continue;
        }
        // `<k>: unknown field `<k>`, …`, where the key may itself hold a backtick or colon.
        let unknown_top = e.match_indices(": unknown field `").any(|(i, m)| {
            e[i + m.len()..]
                .strip_prefix(&e[..i])
                .is_some_and(|r| r.starts_with('`'))
        });
        let rooted = unknown_top
            || TOP_FIELDS.iter().any(|f| {
                e.strip_prefix(f)
                    .is_some_and(|r| r.starts_with(['.', '[', ':']))
            });
        assert!(rooted, "error without a path: {e:?}");
        let (_, msg) = e.rsplit_once(": ").unwrap_or(("", e));
        assert!(!msg.trim().is_empty(), "error without a message: {e:?}");
    }
}

/// What every accepted table guarantees to the rest of the gateway.
fn check_table(t: &RoutingTable) {
    assert!(!t.routes.is_empty());
    for d in &t.deployments {
        assert!(d.provider < t.providers.len(), "{}", d.name);
        assert!(t.provider_of(d).is_some());
        assert!(d.context_window >= 1 && !d.model.trim().is_empty());
        for ms in [
            d.timeouts.connect_ms,
            d.timeouts.first_token_ms,
            d.timeouts.idle_ms,
            d.timeouts.attempt_ms,
        ] {
            assert!((1..=3_600_000).contains(&ms));
        }
    }
    for (name, r) in &t.routes {
        assert_eq!(&r.name, name);
        let steps = r.chain.steps();
        assert!(!steps.is_empty() && steps.len() <= 21, "route {name}");
        for (i, s) in steps.iter().enumerate() {
            assert!(s.deployment < t.deployments.len());
            assert!(t.deployment(s.deployment).is_some());
            assert!(steps[..i].iter().all(|p| p.deployment != s.deployment));
            assert!(s.weight <= 10_000);
            assert!((1..=10).contains(&s.retry.max_attempts));
            assert!(s.retry.backoff_base_ms <= s.retry.backoff_max_ms);
        }
        assert!((1..=3_600_000).contains(&r.request_timeout_ms));
        if let Some(c) = &r.canary {
            assert!(c.deployment < t.deployments.len() && c.percent_bps <= 10_000);
        }
        if let Some(ttl) = r.sticky_ttl_ms {
            assert!((1..=86_400_000).contains(&ttl));
        }
        assert!(r.resume.max <= 5);
    }
    assert!(t.limits.subrequests >= MIN_SUBREQUESTS);
    if let Some(tasks) = &t.tasks {
        for route in tasks.routes.values() {
            assert!(t.routes.contains_key(route));
        }
        if let Some(d) = &tasks.default {
            assert!(tasks.routes.contains_key(d));
        }
        for rule in &tasks.rules {
            assert!(tasks.routes.contains_key(&rule.task));
        }
    }
}

fn parse_checked(input: &[u8]) -> Result<RoutingTable, Vec<String>> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Err(vec!["not UTF-8".into()]); // parse_table takes &str; KV text is UTF-8
    };
    let result = parse_table(text);
    assert_eq!(result, parse_table(text), "parse_table is deterministic");
    match &result {
        Ok(t) => {
            check_table(t);
            // One JSON object and nothing else: never serde's positional struct form (nested
            // levels: the `positional` invalid mutation), never trailing characters.
            let whole = serde_json::from_slice::<Value>(input);
            assert!(
                whole.as_ref().is_ok_and(Value::is_object),
                "accepted, but not one JSON object: {:?}",
                whole.err()
            );
        }
        Err(errs) => check_table_errors(errs),
    }
    result
}

fn table_case(rng: &mut Rng) {
    let mut t = base_table(rng);
    match rng.below(3) {
        0 => {
            for _ in 0..rng.range(1, 3) {
                valid_table_mutation(rng, &mut t);
            }
            let input = to_bytes(rng, &t);
            if let Err(e) = parse_checked(&input) {
                panic!(
                    "valid table rejected: {e:?}\n{}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        1 => {
            for _ in 0..rng.below(3) {
                valid_table_mutation(rng, &mut t);
            }
            let path = invalid_table_mutation(rng, &mut t);
            let input = to_bytes(rng, &t);
            match parse_checked(&input) {
                Ok(_) => panic!(
                    "invalid table accepted ({path}):\n{}",
                    String::from_utf8_lossy(&input)
                ),
                Err(errs) => assert!(
                    errs.iter().any(|e| e.starts_with(&path)),
                    "no error at {path:?}: {errs:?}"
                ),
            }
        }
        _ => {
            for _ in 0..rng.range(1, 4) {
                mutate_value(rng, &mut t);
            }
            let mut input = to_bytes(rng, &t);
            if rng.one_in(3) {
                for _ in 0..rng.range(1, 3) {
                    mutate_bytes(rng, &mut input);
                }
            }
            let _ = parse_checked(&input);
        }
    }
}

#[test]
fn fuzz_routing_table() {
    let rich = rich_table().to_string();
    if let Err(e) = parse_table(&rich) {
        panic!("the rich seed table must be valid: {e:?}");
    }
    fuzz("fuzz_routing_table", 0x7AB1_E002, 1_200, table_case);
}
