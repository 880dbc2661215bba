//! The admin API's per-route view (`GET /admin/api/routes`): the window sums every
//! deployment's object keeps (`route_stats`), added up per route, per route and deployment,
//! and per provider. Pure: the objects' replies come in as values.

use super::hourly::Tally;
use super::route_stats::Figures;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One deployment's object's window sums, by route.
#[derive(Debug, Clone, Default)]
pub struct DeploymentRoutes {
    pub deployment: String,
    pub provider: String,
    pub routes: BTreeMap<String, Figures>,
}

/// `{"hours": H, "routes": [...], "providers": [...]}`: each route with its request figures
/// (summed over all objects: `Figures::requests_json`) and a `deployments` list with each
/// tried deployment's attempt figures (`Figures::attempts_json`, plus its provider); each
/// provider with its attempt figures over all routes. Sorted by name. Every route of `known`
/// (the table's) is listed, with zeros when it had no traffic in the window.
pub fn routes_view(inputs: &[DeploymentRoutes], known: &[String], hours: u64) -> Value {
    let mut routes: BTreeMap<&str, (Figures, Vec<Value>)> = known
        .iter()
        .map(|r| (r.as_str(), (Figures::default(), Vec::new())))
        .collect();
    let mut providers: BTreeMap<&str, Figures> = BTreeMap::new();
    for d in inputs {
        for (route, f) in &d.routes {
            let entry = routes.entry(route.as_str()).or_default();
            entry.0.merge(f);
            if f.attempts > 0 {
                let mut row = f.attempts_json();
                if let Some(o) = row.as_object_mut() {
                    o.insert("deployment".into(), json!(d.deployment));
                    o.insert("provider".into(), json!(d.provider));
                }
                entry.1.push(row);
                providers
                    .entry(d.provider.as_str())
                    .or_default()
                    .merge(&attempts_only(f));
            }
        }
    }
    let routes: Vec<Value> = routes
        .into_iter()
        .map(|(name, (sum, deployments))| {
            let mut v = sum.requests_json();
            if let Some(o) = v.as_object_mut() {
                o.insert("route".into(), json!(name));
                o.insert("deployments".into(), Value::Array(deployments));
            }
            v
        })
        .collect();
    let providers: Vec<Value> = providers
        .into_iter()
        .map(|(name, f)| {
            let mut v = f.attempts_json();
            if let Some(o) = v.as_object_mut() {
                o.insert("provider".into(), json!(name));
            }
            v
        })
        .collect();
    json!({"hours": hours, "routes": routes, "providers": providers})
}

fn attempts_only(f: &Figures) -> Figures {
    Figures {
        attempts: f.attempts,
        attempt_errors: f.attempt_errors,
        attempt_cost_nanos: f.attempt_cost_nanos,
        latency_buckets: f.latency_buckets.clone(),
        ..Figures::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::route_stats::{RouteAttempt, RouteRequest};

    fn attempt(route: &str, ok: bool, latency_ms: u64, cost_nanos: u64) -> RouteAttempt {
        RouteAttempt {
            route: route.into(),
            ok,
            latency_ms,
            cost_nanos,
        }
    }

    #[test]
    fn sums_a_route_over_objects_and_lists_each_tried_deployment() {
        let mut first = Figures::default();
        first.add_request(&RouteRequest {
            route: "chat".into(),
            fell_back: true,
            cost_nanos: 300,
            savings_nanos: 40,
            cached_tokens: 100,
            ..RouteRequest::default()
        });
        first.add_request(&RouteRequest {
            route: "chat".into(),
            cache_hit: true,
            ..RouteRequest::default()
        });
        first.add_attempt(&attempt("chat", false, 30, 0));
        let mut second = Figures::default();
        second.add_attempt(&attempt("chat", true, 700, 300));
        let inputs = vec![
            DeploymentRoutes {
                deployment: "a".into(),
                provider: "openai".into(),
                routes: [("chat".to_string(), first)].into(),
            },
            DeploymentRoutes {
                deployment: "b".into(),
                provider: "anthropic".into(),
                routes: [("chat".to_string(), second)].into(),
            },
        ];
        let v = routes_view(&inputs, &[], 6);
        assert_eq!(v["hours"], 6);
        let chat = &v["routes"][0];
        assert_eq!(chat["route"], "chat");
        assert_eq!(chat["requests"], 2);
        assert_eq!(chat["fallbacks"], 1);
        assert_eq!(chat["fallback_rate_bps"], 5_000);
        assert_eq!(chat["cache_hits"], 1);
        assert_eq!(chat["cost_usd"], "0.0000003");
        assert_eq!(chat["savings_nanos"], 40);
        let deps = chat["deployments"].as_array().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0]["deployment"], "a");
        assert_eq!(deps[0]["failover_rate_bps"], 10_000);
        assert_eq!(deps[0]["latency_p95_ms"], 50);
        assert_eq!(deps[1]["provider"], "anthropic");
        assert_eq!(deps[1]["latency_p95_ms"], 1_000);
        assert_eq!(deps[1]["cost_nanos"], 300);
        let providers = v["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 2);
        assert_eq!(providers[0]["provider"], "anthropic");
        assert_eq!(providers[1]["provider"], "openai");
        assert_eq!(providers[1]["errors"], 1);
    }

    #[test]
    fn known_routes_without_traffic_are_listed_with_zeros() {
        let v = routes_view(&[], &["idle".to_string()], 24);
        assert_eq!(v["routes"][0]["route"], "idle");
        assert_eq!(v["routes"][0]["requests"], 0);
        assert_eq!(v["routes"][0]["deployments"], json!([]));
        assert_eq!(v["providers"], json!([]));
    }
}
