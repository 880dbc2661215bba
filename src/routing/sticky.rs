//! Session affinity without shared state: a session id is mapped to one of a route's
//! deployments by rendezvous hashing, so every isolate picks the same deployment for the same
//! session, and a deployment leaving the route moves only its own sessions.

use crate::api::ChatRequest;
use crate::config::{Route, RoutingTable};
use crate::hash::fnv1a;
use serde_json::Value;

/// Request header naming the caller's session.
pub const SESSION_HEADER: &str = "x-session-id";

/// The session a request belongs to: `x-session-id`, else the body's `user` (empty values
/// count as absent). `headers` have lower-case names.
pub fn session_of(chat: &ChatRequest, headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == SESSION_HEADER)
        .map(|(_, v)| v.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            chat.body
                .get("user")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
}

/// The deployment (index into `table.deployments`) that `session` belongs to on `route`:
/// the chain step (canary-only steps excluded) with the highest hash of (session, name).
pub fn rendezvous(route: &Route, table: &RoutingTable, session: &str) -> Option<usize> {
    route
        .chain
        .steps()
        .iter()
        .filter(|s| !s.canary_only)
        .filter_map(|s| table.deployment(s.deployment).map(|d| (s.deployment, d)))
        .max_by_key(|(_, d)| {
            let mut key = Vec::with_capacity(session.len() + d.name.len() + 1);
            key.extend_from_slice(session.as_bytes());
            key.push(0);
            key.extend_from_slice(d.name.as_bytes());
            fnv1a(&key)
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_table;

    fn table(chain: &[&str]) -> RoutingTable {
        let deps: serde_json::Map<String, serde_json::Value> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    serde_json::json!({"provider": "m", "model": n, "context_window": 1000}),
                )
            })
            .collect();
        let t = serde_json::json!({"version": 1, "providers": {"m": {"kind": "mock"}},
            "deployments": deps, "routes": {"r": {"chain": chain, "sticky": {"ttl_ms": 1000}}}});
        parse_table(&t.to_string()).unwrap()
    }

    #[test]
    fn same_session_same_deployment_and_sessions_spread() {
        let t = table(&["a", "b", "c", "d"]);
        let r = t.route("r").unwrap();
        let first = rendezvous(r, &t, "session-1");
        for _ in 0..10 {
            assert_eq!(rendezvous(r, &t, "session-1"), first);
        }
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            seen.insert(rendezvous(r, &t, &format!("s{i}")).unwrap());
        }
        assert_eq!(seen.len(), 4, "200 sessions use every deployment");
    }

    #[test]
    fn removing_a_deployment_moves_only_its_sessions() {
        let all = table(&["a", "b", "c", "d"]);
        let three = table(&["a", "b", "c"]);
        let name = |t: &RoutingTable, i: usize| t.deployments[i].name.clone();
        for i in 0..200 {
            let s = format!("s{i}");
            let before = name(&all, rendezvous(all.route("r").unwrap(), &all, &s).unwrap());
            let after = name(
                &three,
                rendezvous(three.route("r").unwrap(), &three, &s).unwrap(),
            );
            if before != "d" {
                assert_eq!(
                    before, after,
                    "session {s} moved although its deployment stayed"
                );
            }
        }
    }
}
