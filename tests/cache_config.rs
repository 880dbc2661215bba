//! A route's `cache` block: validated with path-named errors, absent means off.

use edge_router::config::{parse_table, CachePolicy, CacheScope};
use serde_json::{json, Value};

fn table(cache: Value) -> Value {
    json!({
        "version": 1,
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {"m": {"provider": "mock", "model": "m1", "context_window": 1000}},
        "routes": {"r": {"chain": ["m"], "cache": cache}, "plain": {"chain": ["m"]}}
    })
}

#[test]
fn a_routes_cache_is_validated_and_defaults_to_key_scope() {
    let t = parse_table(&table(json!({"ttl_s": 60})).to_string()).unwrap();
    assert_eq!(
        t.route("r").unwrap().cache,
        Some(CachePolicy {
            ttl_s: 60,
            scope: CacheScope::Key,
            cache_sampled: false
        })
    );
    assert_eq!(t.route("plain").unwrap().cache, None);
    let t = parse_table(
        &table(json!({"ttl_s": 5, "scope": "shared", "cache_sampled": true})).to_string(),
    )
    .unwrap();
    let c = t.route("r").unwrap().cache.unwrap();
    assert_eq!((c.scope, c.cache_sampled), (CacheScope::Shared, true));
}

#[test]
fn a_bad_cache_block_is_refused_with_its_path() {
    for (cache, expected) in [
        (json!({"ttl_s": 0}), "routes.r.cache.ttl_s"),
        (json!({"ttl_s": 604_801}), "routes.r.cache.ttl_s"),
        (
            json!({"ttl_s": 5, "scope": "global"}),
            "routes.r.cache.scope",
        ),
        (json!({"ttl_s": 5, "sampled": true}), "sampled"),
        (json!({"scope": "key"}), "ttl_s"),
        (json!([5]), "routes.r"),
    ] {
        let errs = parse_table(&table(cache.clone()).to_string()).expect_err("refused");
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{cache}: {errs:?}"
        );
    }
}
