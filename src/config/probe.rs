//! The route of a health probe: the cron trigger sends a one-token request to a deployment
//! whose breaker is open, through the engine like any request. The route is built here, from
//! the validated table, so it holds what validation guarantees (a non-empty chain of a
//! deployment that exists) and nothing a table did not say (no retry, resume or hedge).

use super::policies::DEFAULT_RETRY;
use super::types::{Chain, ChainStep, ResumeMode, ResumePolicy, RetryPolicy, Route, RoutingTable};

impl Route {
    /// `probe:<name>`: deployment `deployment` of `table` alone, tried once, within its
    /// attempt timeout. None if the table has no such deployment.
    pub fn probe(table: &RoutingTable, deployment: usize) -> Option<Route> {
        let dep = table.deployment(deployment)?;
        let chain = Chain::new(vec![ChainStep {
            deployment,
            retry: RetryPolicy {
                max_attempts: 1,
                ..DEFAULT_RETRY
            },
            weight: 1,
            canary_only: false,
        }])?;
        Some(Route {
            name: format!("probe:{}", dep.name),
            chain,
            request_timeout_ms: dep.timeouts.attempt_ms,
            fallback_on_content_policy: false,
            description: None,
            resume: ResumePolicy {
                mode: ResumeMode::Off,
                max: 0,
            },
            strategy: Default::default(),
            require_tags: Vec::new(),
            canary: None,
            sticky_ttl_ms: None,
            hedge_after_ms: None,
            hedge_p95_cap_ms: None,
            validate_output: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Route, Strategy};

    const TABLE: &str = r#"{"version": 1, "providers": {"m": {"kind": "mock"}},
        "defaults": {"retry": {"max_attempts": 4}},
        "deployments": {
            "a": {"provider": "m", "model": "m", "context_window": 1000,
                  "timeouts": {"attempt_ms": 7000}, "retry": {"max_attempts": 3}},
            "b": {"provider": "m", "model": "m", "context_window": 1000}},
        "routes": {"r": {"chain": ["a", "b"], "resume": "replay", "hedge": {"after_ms": 50},
                          "strategy": "fastest", "sticky": {"ttl_ms": 1000}}}}"#;

    #[test]
    fn a_probe_tries_one_deployment_once_within_its_attempt_timeout() {
        let table = parse(TABLE).unwrap();
        let a = table
            .deployments
            .iter()
            .position(|d| d.name == "a")
            .unwrap();
        let route = Route::probe(&table, a).unwrap();
        assert_eq!(route.name, "probe:a");
        let steps = route.chain.steps();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].deployment, a);
        assert!(!steps[0].canary_only);
        // Neither the table's defaults nor the deployment's retry: one attempt.
        assert_eq!(steps[0].retry.max_attempts, 1);
        assert_eq!(route.request_timeout_ms, 7000);
        assert_eq!(route.resume.max, 0);
        assert_eq!(route.strategy, Strategy::Ordered);
        assert!(route.canary.is_none() && route.sticky_ttl_ms.is_none());
        assert!(route.hedge_after_ms.is_none() && route.require_tags.is_empty());
        assert!(!route.fallback_on_content_policy);
    }

    #[test]
    fn no_probe_for_a_deployment_the_table_lacks() {
        let table = parse(TABLE).unwrap();
        assert!(Route::probe(&table, table.deployments.len()).is_none());
    }
}
