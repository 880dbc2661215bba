//! Plans: strategies, constraints (tags, cost ceiling), canary and sticky precedence, and the
//! weighted and canary shares over many seeded draws.

use super::strategy::*;
use crate::config::{parse_table, RoutingTable};
use crate::state::degradation::Reason;
use crate::usage::Usage;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Prices (USD per million input / output tokens): a 1/2, b 3/6, c 0.5/1, d (canary) 1/1.
pub(super) fn table(routes: Value) -> RoutingTable {
    let dep = |price_in: &str, price_out: &str, tags: Value| {
        json!({"provider": "mock", "model": "m", "context_window": 100000, "tags": tags,
               "price": {"input_per_mtok_usd": price_in, "output_per_mtok_usd": price_out}})
    };
    let t = json!({
        "version": 1,
        "providers": {"mock": {"kind": "mock"}},
        "deployments": {
            "a": dep("1", "2", json!(["eu"])),
            "b": dep("3", "6", json!(["eu", "zdr"])),
            "c": dep("0.5", "1", json!([])),
            "d": dep("1", "1", json!(["eu", "zdr"])),
        },
        "routes": routes,
    });
    parse_table(&t.to_string()).unwrap()
}

/// One prompt + one completion token: a 3000, b 9000, c 1500, d 2000 nano-USD.
const EST: Usage = Usage {
    prompt_tokens: 1,
    completion_tokens: 1,
    cached_tokens: None,
    cache_write_tokens: None,
    reasoning_tokens: None,
};

pub(super) fn input<'a>(t: &'a RoutingTable, route: &str) -> PlanInput<'a> {
    PlanInput {
        route: t.route(route).unwrap(),
        table: t,
        est: EST,
        max_cost_nanos: None,
        sticky: None,
        random: 0,
    }
}

pub(super) fn names(t: &RoutingTable, input: &PlanInput, p: &Plan) -> Vec<String> {
    let steps = input.route.chain.steps();
    p.order
        .iter()
        .map(|&i| t.deployment(steps[i].deployment).unwrap().name.clone())
        .collect()
}

pub(super) fn order(
    t: &RoutingTable,
    input: &PlanInput,
    stats: &dyn DeploymentStats,
) -> Vec<String> {
    names(t, input, &plan(input, stats))
}

pub(super) fn dep_index(t: &RoutingTable, name: &str) -> usize {
    t.deployments.iter().position(|d| d.name == name).unwrap()
}

#[derive(Default)]
pub(super) struct Stats {
    pub ttft: HashMap<&'static str, u64>,
    pub tps: HashMap<&'static str, u64>,
    pub headroom: HashMap<&'static str, u32>,
    pub degraded: HashMap<&'static str, Reason>,
}

impl DeploymentStats for Stats {
    fn ttft_ms(&self, dep: &str) -> Option<u64> {
        self.ttft.get(dep).copied()
    }
    fn tokens_per_s(&self, dep: &str) -> Option<u64> {
        self.tps.get(dep).copied()
    }
    fn headroom_bps(&self, dep: &str) -> Option<u32> {
        self.headroom.get(dep).copied()
    }
    fn degraded(&self, dep: &str) -> Option<Reason> {
        self.degraded.get(dep).copied()
    }
}

/// xorshift64*: a seeded, dependency-free source of uniform u64s for the distribution tests.
pub(super) struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const N: u32 = 10_000;
/// Every share must land within ±2 percentage points (200 bps) of its expected value; at
/// N = 10 000 one standard deviation is at most 0.5 points, so this is a ≥ 4 σ margin.
const TOLERANCE_BPS: i64 = 200;

fn assert_share(what: &str, count: u32, expected_bps: i64) {
    let got_bps = i64::from(count) * 10_000 / i64::from(N);
    assert!(
        (got_bps - expected_bps).abs() <= TOLERANCE_BPS,
        "{what}: {got_bps} bps, expected {expected_bps} ± {TOLERANCE_BPS}"
    );
}

#[test]
fn ordered_is_chain_order_and_strategies_sort() {
    let t = table(json!({
        "ordered": {"chain": ["b", "a", "c"]},
        "cheapest": {"chain": ["b", "a", "c", "d"], "strategy": "cheapest"},
        "fastest": {"chain": ["a", "b", "c", "d"], "strategy": "fastest"},
        "least": {"chain": ["a", "b", "c", "d"], "strategy": "least_used"},
    }));
    assert_eq!(order(&t, &input(&t, "ordered"), &NoStats), ["b", "a", "c"]);
    assert_eq!(
        order(&t, &input(&t, "cheapest"), &NoStats),
        ["c", "d", "a", "b"]
    );
    let mut stats = Stats::default();
    stats.ttft.extend([("b", 300), ("c", 300), ("d", 100)]);
    stats.tps.extend([("b", 50), ("c", 90)]);
    // d fastest; b and c tie on TTFT, c streams faster; a unknown → last.
    assert_eq!(
        order(&t, &input(&t, "fastest"), &stats),
        ["d", "c", "b", "a"]
    );
    // Without stats, fastest and least_used keep chain order.
    assert_eq!(
        order(&t, &input(&t, "fastest"), &NoStats),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        order(&t, &input(&t, "least"), &NoStats),
        ["a", "b", "c", "d"]
    );
    stats
        .headroom
        .extend([("a", 2_000), ("b", 9_000), ("d", 10_000)]);
    // c unknown counts as 10000 and ties with d: chain order between them.
    assert_eq!(order(&t, &input(&t, "least"), &stats), ["c", "d", "b", "a"]);
}

#[test]
fn cheapest_ties_keep_chain_order() {
    let t = table(json!({"r": {"chain": ["d", "b", "a"], "strategy": "cheapest"}}));
    let mut i = input(&t, "r");
    i.est = Usage {
        prompt_tokens: 1,
        completion_tokens: 0,
        ..EST
    }; // a and d both cost 1000 nano-USD
    assert_eq!(order(&t, &i, &NoStats), ["d", "a", "b"]);
}

#[test]
fn tags_and_cost_ceiling_remove_deployments_entirely() {
    let t = table(json!({
        "eu": {"chain": ["c", "a", "b"], "require_tags": ["eu"]},
        "zdr": {"chain": ["a", "b", "c", "d"], "require_tags": ["eu", "zdr"], "strategy": "cheapest"},
    }));
    let i = input(&t, "eu");
    let p = plan(&i, &NoStats);
    assert_eq!(names(&t, &i, &p), ["a", "b"]);
    assert_eq!(p.removed, vec![("c".to_string(), "tag")]);

    let mut i = input(&t, "zdr");
    assert_eq!(order(&t, &i, &NoStats), ["d", "b"]);
    i.max_cost_nanos = Some(8_999);
    let p = plan(&i, &NoStats);
    assert_eq!(names(&t, &i, &p), ["d"], "b (9000) is over the ceiling");
    assert_eq!(
        p.removed,
        vec![
            ("a".to_string(), "tag"),
            ("b".to_string(), "cost_ceiling"),
            ("c".to_string(), "tag")
        ]
    );
    i.max_cost_nanos = Some(1_999);
    assert!(
        plan(&i, &NoStats).order.is_empty(),
        "nothing fits: no fallback either"
    );
    i.max_cost_nanos = Some(2_000);
    assert_eq!(order(&t, &i, &NoStats), ["d"], "the ceiling is inclusive");
}

#[test]
fn weighted_shares_follow_the_weights() {
    let t = table(json!({"w": {"strategy": "weighted", "chain": [
        {"deployment": "a", "weight": 1}, {"deployment": "b", "weight": 3},
        {"deployment": "c", "weight": 6}, {"deployment": "d", "weight": 0}]}}));
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut firsts: HashMap<String, u32> = HashMap::new();
    for _ in 0..N {
        let mut i = input(&t, "w");
        i.random = rng.next();
        let o = order(&t, &i, &NoStats);
        // The rest keep chain order, weight-0 d included as a fallback.
        let mut rest: Vec<&String> = o.iter().skip(1).collect();
        rest.sort();
        assert_eq!(o.len(), 4);
        assert!(o.iter().skip(1).eq(rest.iter().copied()), "{o:?}");
        *firsts.entry(o[0].clone()).or_default() += 1;
    }
    assert_eq!(firsts.get("d"), None, "weight 0 is never first");
    assert_share("a", firsts["a"], 1_000);
    assert_share("b", firsts["b"], 3_000);
    assert_share("c", firsts["c"], 6_000);

    // A removed heavy entry hands its share to the rest, in proportion.
    let t = table(
        json!({"w": {"strategy": "weighted", "require_tags": ["eu"], "chain": [
        {"deployment": "a", "weight": 1}, {"deployment": "c", "weight": 100}, "b"]}}),
    );
    let mut a_first = 0;
    for _ in 0..N {
        let mut i = input(&t, "w");
        i.random = rng.next();
        let o = order(&t, &i, &NoStats);
        assert_eq!(o.len(), 2);
        a_first += u32::from(o[0] == "a");
    }
    assert_share("a of a:b = 1:1", a_first, 5_000);
}

#[test]
fn canary_share_and_placement() {
    let t = table(json!({
        "in-chain": {"chain": ["a", "b", "d"], "canary": {"deployment": "d", "percent_bps": 500}},
        "outside": {"chain": ["a", "b"], "strategy": "weighted",
                    "canary": {"deployment": "d", "percent_bps": 2500}},
    }));
    let mut rng = XorShift(42);
    let (mut in_chain, mut outside) = (0, 0);
    for _ in 0..N {
        let random = rng.next();
        let mut i = input(&t, "in-chain");
        i.random = random;
        let p = plan(&i, &NoStats);
        let o = names(&t, &i, &p);
        if p.canary {
            in_chain += 1;
            assert_eq!(o, ["d", "a", "b"]);
        } else {
            assert_eq!(o, ["a", "b", "d"]);
        }
        let mut i = input(&t, "outside");
        i.random = random;
        let p = plan(&i, &NoStats);
        let o = names(&t, &i, &p);
        if p.canary {
            outside += 1;
            assert_eq!(o.len(), 3);
            assert_eq!(o[0], "d");
        } else {
            assert_eq!(
                o.len(),
                2,
                "a canary outside the chain is never a fallback: {o:?}"
            );
            assert!(!o.contains(&"d".to_string()));
        }
    }
    assert_share("canary 5 %", in_chain, 500);
    assert_share("canary 25 %", outside, 2_500);
}

#[test]
fn canary_removed_by_the_ceiling_is_skipped() {
    let t = table(
        json!({"r": {"chain": ["c", "a"], "canary": {"deployment": "b", "percent_bps": 10000}}}),
    );
    let mut i = input(&t, "r");
    let p = plan(&i, &NoStats);
    assert!(p.canary);
    assert_eq!(names(&t, &i, &p), ["b", "c", "a"]);
    i.max_cost_nanos = Some(5_000);
    let p = plan(&i, &NoStats);
    assert!(!p.canary);
    assert_eq!(names(&t, &i, &p), ["c", "a"]);
    assert_eq!(p.removed, vec![("b".to_string(), "cost_ceiling")]);
}

#[test]
fn sticky_wins_unless_removed() {
    let t = table(json!({
        "r": {"chain": ["a", "b", "c"], "strategy": "cheapest", "sticky": {"ttl_ms": 60000},
              "canary": {"deployment": "d", "percent_bps": 10000}},
    }));
    let mut i = input(&t, "r");
    // Canary at 100 %: without a session the canary goes first.
    let p = plan(&i, &NoStats);
    assert!(p.canary && !p.sticky);
    assert_eq!(names(&t, &i, &p), ["d", "c", "a", "b"]);
    // A session stuck to b: b first, then the strategy; the canary slice does not apply.
    i.sticky = Some(dep_index(&t, "b"));
    let p = plan(&i, &NoStats);
    assert!(p.sticky && !p.canary);
    assert_eq!(names(&t, &i, &p), ["b", "c", "a"]);
    // A session stuck to the canary stays on it.
    i.sticky = Some(dep_index(&t, "d"));
    let p = plan(&i, &NoStats);
    assert!(p.sticky && !p.canary);
    assert_eq!(names(&t, &i, &p), ["d", "c", "a", "b"]);
    // A sticky deployment over the ceiling is not used (nor tried later).
    i.sticky = Some(dep_index(&t, "b"));
    i.max_cost_nanos = Some(8_000);
    let p = plan(&i, &NoStats);
    assert!(!p.sticky && p.canary);
    assert_eq!(names(&t, &i, &p), ["d", "c", "a"]);
    // A remembered deployment that is not on the route is ignored.
    let t2 = table(json!({
        "r": {"chain": ["a", "b"], "require_tags": ["zdr"], "sticky": {"ttl_ms": 1000}},
        "no-sticky": {"chain": ["a", "b"]},
    }));
    let mut i = input(&t2, "r");
    i.sticky = Some(dep_index(&t2, "a")); // lacks zdr
    let p = plan(&i, &NoStats);
    assert!(!p.sticky);
    assert_eq!(names(&t2, &i, &p), ["b"]);
    i.sticky = Some(dep_index(&t2, "c")); // not in the chain
    assert!(!plan(&i, &NoStats).sticky);
    // Routes without `sticky` ignore a remembered deployment.
    let mut i = input(&t2, "no-sticky");
    i.sticky = Some(dep_index(&t2, "b"));
    let p = plan(&i, &NoStats);
    assert!(!p.sticky);
    assert_eq!(names(&t2, &i, &p), ["a", "b"]);
}

#[test]
fn explain_lists_every_candidate_and_the_order() {
    let t = table(
        json!({"r": {"chain": ["a", "c", "b"], "strategy": "cheapest",
        "require_tags": ["eu"], "canary": {"deployment": "d", "percent_bps": 0}}}),
    );
    let mut i = input(&t, "r");
    i.max_cost_nanos = Some(5_000);
    let v = explain(&i, &NoStats);
    assert_eq!(v["strategy"], "cheapest");
    assert_eq!(v["order"], json!(["a"]));
    let c = v["candidates"].as_array().unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(c[0]["kept"], true);
    assert_eq!(c[0]["estimated_cost_nanos"], 3000);
    assert_eq!(c[0]["estimated_cost_usd"], "0.000003");
    assert_eq!(
        (&c[1]["reason"], &c[1]["missing_tags"]),
        (&json!("tag"), &json!(["eu"]))
    );
    assert_eq!(c[2]["reason"], "cost_ceiling");
    assert_eq!(
        (&c[3]["deployment"], &c[3]["reason"]),
        (&json!("d"), &json!("canary_not_drawn"))
    );
    assert_eq!(v["canary"]["first"], false);
    assert_eq!(v["sticky"]["first"], false);
}
