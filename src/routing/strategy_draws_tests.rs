//! The parts of a plan a draw decides, beyond the weighted pick and the canary slice:
//! degraded deployments deferred except in the recovery share, and `fastest`'s exploration.

use super::strategy::*;
use super::strategy_tests::{dep_index, input, names, table, Stats, XorShift};
use crate::config::parse_table;
use crate::state::degradation::Reason;
use serde_json::json;
use std::collections::HashMap;

/// A random whose recovery draw is at or past `min` (out of 10000) (found by search).
fn draw_at_least(min: u32) -> u64 {
    (0u64..).find(|r| recovery_draw(*r) >= min).unwrap()
}

#[test]
fn degraded_deployments_go_behind_healthy_ones_and_stay_as_fallbacks() {
    let t = table(json!({"r": {"chain": ["a", "b", "c"]}}));
    let mut stats = Stats::default();
    stats.degraded.insert("a", Reason::Latency);
    let mut i = input(&t, "r");
    i.random = draw_at_least(500);
    let p = plan(&i, &stats);
    assert_eq!(names(&t, &i, &p), ["b", "c", "a"]);
    assert_eq!(p.deferred, vec![("a".to_string(), Reason::Latency)]);
    // Already last: nothing moved, nothing to report.
    let mut stats = Stats::default();
    stats.degraded.insert("c", Reason::Errors);
    let p = plan(&i, &stats);
    assert_eq!(names(&t, &i, &p), ["a", "b", "c"]);
    assert!(p.deferred.is_empty());
    // All degraded: the order stands.
    let mut stats = Stats::default();
    for d in ["a", "b", "c"] {
        stats.degraded.insert(d, Reason::Timeouts);
    }
    let p = plan(&i, &stats);
    assert_eq!(names(&t, &i, &p), ["a", "b", "c"]);
    assert!(p.deferred.is_empty());
}

#[test]
fn a_degraded_deployment_keeps_its_place_in_about_the_recovery_share() {
    let t = table(json!({"r": {"chain": ["a", "b"]}}));
    let mut stats = Stats::default();
    stats.degraded.insert("a", Reason::Ttft);
    let mut rng = XorShift(42);
    let n = 20_000;
    let mut first = 0;
    for _ in 0..n {
        let mut i = input(&t, "r");
        i.random = rng.next();
        if names(&t, &i, &plan(&i, &stats))[0] == "a" {
            first += 1;
        }
    }
    // 5 % by default: 1000 expected.
    assert!((850..1150).contains(&first), "{first}");
}

#[test]
fn a_degraded_sticky_or_canary_deployment_loses_its_first_place_and_its_flag() {
    let t = table(json!({
        "r": {"chain": ["a", "b", "c"], "sticky": {"ttl_ms": 60000}}
    }));
    let mut stats = Stats::default();
    stats.degraded.insert("b", Reason::Latency);
    let mut i = input(&t, "r");
    i.random = draw_at_least(500);
    i.sticky = Some(dep_index(&t, "b"));
    let p = plan(&i, &stats);
    assert_eq!(names(&t, &i, &p), ["a", "c", "b"]);
    assert!(!p.sticky);
}

#[test]
fn deployments_with_degradation_off_are_never_deferred() {
    let mut raw = json!({
        "version": 1,
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {
            "a": {"provider": "mock", "model": "m", "context_window": 1000, "degradation": "off"},
            "b": {"provider": "mock", "model": "m", "context_window": 1000},
        },
        "routes": {"r": {"chain": ["a", "b"]}},
    });
    let t = parse_table(&raw.to_string()).unwrap();
    let mut stats = Stats::default();
    stats.degraded.insert("a", Reason::Latency);
    let mut i = input(&t, "r");
    i.random = draw_at_least(500);
    assert_eq!(names(&t, &i, &plan(&i, &stats)), ["a", "b"]);
    // And on by default.
    raw["deployments"]["a"] = json!({"provider": "mock", "model": "m", "context_window": 1000});
    let t = parse_table(&raw.to_string()).unwrap();
    let i = PlanInput {
        random: i.random,
        ..input(&t, "r")
    };
    assert_eq!(names(&t, &i, &plan(&i, &stats)), ["b", "a"]);
}

#[test]
fn fastest_tries_another_deployment_first_in_about_the_explore_share() {
    let t = table(json!({"fast": {"chain": ["a", "b", "c", "d"], "strategy": "fastest"}}));
    let mut stats = Stats::default();
    stats.ttft.extend([("a", 300), ("b", 100), ("c", 200)]);
    // The fixed input's draw is outside the share: the order is by speed, d unmeasured last.
    assert!(explore_draw(0).0 >= EXPLORE_SHARE_BPS);
    let p = plan(&input(&t, "fast"), &stats);
    assert_eq!(names(&t, &input(&t, "fast"), &p), ["b", "c", "a", "d"]);
    assert!(!p.explored);
    let mut rng = XorShift(7);
    let n = 20_000;
    let mut firsts: HashMap<String, u32> = HashMap::new();
    for _ in 0..n {
        let mut i = input(&t, "fast");
        i.random = rng.next();
        let p = plan(&i, &stats);
        let order = names(&t, &i, &p);
        assert_eq!(p.explored, order[0] != "b", "{order:?}");
        // The rest keeps its order by speed.
        let rest: Vec<&String> = order.iter().filter(|d| *d != &order[0]).collect();
        let mut sorted = vec!["b", "c", "a", "d"];
        sorted.retain(|d| *d != order[0]);
        assert_eq!(rest, sorted, "{order:?}");
        *firsts.entry(order[0].clone()).or_default() += 1;
    }
    // 5 % explore (1000 expected), and the unmeasured deployment is the one explored.
    let explored = n - firsts["b"];
    assert!((850..1150).contains(&explored), "{firsts:?}");
    assert_eq!(
        firsts.get("d").copied().unwrap_or(0),
        explored,
        "{firsts:?}"
    );

    // All measured: any of the others, about evenly.
    stats.ttft.insert("d", 400);
    let mut firsts: HashMap<String, u32> = HashMap::new();
    for _ in 0..n {
        let mut i = input(&t, "fast");
        i.random = rng.next();
        *firsts
            .entry(names(&t, &i, &plan(&i, &stats))[0].clone())
            .or_default() += 1;
    }
    for d in ["a", "c", "d"] {
        let got = firsts.get(d).copied().unwrap_or(0);
        assert!((230..440).contains(&got), "{d}: {firsts:?}");
    }
}

#[test]
fn only_fastest_explores() {
    let t = table(json!({
        "ordered": {"chain": ["a", "b"]},
        "least": {"chain": ["a", "b"], "strategy": "least_used"},
        "cheapest": {"chain": ["a", "b"], "strategy": "cheapest"},
    }));
    let mut rng = XorShift(9);
    for _ in 0..5_000 {
        for r in ["ordered", "least", "cheapest"] {
            let mut i = input(&t, r);
            i.random = rng.next();
            assert!(!plan(&i, &NoStats).explored, "{r}");
        }
    }
}
