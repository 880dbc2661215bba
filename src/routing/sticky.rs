//! Session affinity without shared state: a session id is mapped to one of a route's
//! deployments by rendezvous hashing, so every isolate picks the same deployment for the same
//! session, and a deployment leaving the route moves only its own sessions.
//!
//! A session id is client input of any size (a header, or the body's `user`, up to the body
//! limit) and the worker remembers it per isolate: an id longer than `MAX_SESSION_BYTES` is
//! replaced by its SHA-256, so what is kept stays small while distinct ids stay apart (a cut
//! would merge ids that share a long prefix) and the same id maps to the same key everywhere.

use crate::api::ChatRequest;
use crate::config::{Route, RoutingTable};
use crate::hash::fnv1a;
use crate::keys::hash_key;
use serde_json::Value;

/// Request header naming the caller's session.
pub const SESSION_HEADER: &str = "x-session-id";

/// Longest session id kept as it is (longer ones are kept as `sha256:<hex>`, 71 bytes).
pub const MAX_SESSION_BYTES: usize = 256;

/// The session a request belongs to: `x-session-id`, else the body's `user` (empty values
/// count as absent), as the key to remember it by (at most `MAX_SESSION_BYTES`). `headers`
/// have lower-case names.
pub fn session_of(chat: &ChatRequest, headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == SESSION_HEADER)
        .map(|(_, v)| v.trim())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            chat.body
                .get("user")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(session_key)
}

/// `id` itself when short, else its SHA-256.
fn session_key(id: &str) -> String {
    if id.len() <= MAX_SESSION_BYTES {
        id.to_string()
    } else {
        format!("sha256:{}", hash_key(id))
    }
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

    fn chat(user: &str) -> ChatRequest {
        let body = serde_json::json!({"model": "r", "user": user,
            "messages": [{"role": "user", "content": "hi"}]});
        crate::api::parse_chat_request(body.to_string().as_bytes()).unwrap()
    }

    fn header(value: &str) -> Vec<(String, String)> {
        vec![(SESSION_HEADER.to_string(), value.to_string())]
    }

    #[test]
    fn a_long_session_is_kept_as_a_short_key_that_still_routes_stickily() {
        const BOUND: usize = MAX_SESSION_BYTES;
        let long = "u".repeat(4 << 20);
        let other = format!("{}v", &long[1..]); // differs only in its last byte
        let key = session_of(&chat(&long), &[]).unwrap();
        assert!(
            key.len() <= BOUND,
            "a 4 MiB user kept as {} bytes",
            key.len()
        );
        let other_key = session_of(&chat(&other), &[]).unwrap();
        assert!(other_key.len() <= BOUND);
        assert_ne!(
            key, other_key,
            "two users with a long common prefix stay apart"
        );
        assert_eq!(session_of(&chat(&long), &[]), Some(key.clone()), "stable");
        let from_header = session_of(&chat("ignored"), &header(&long)).unwrap();
        assert!(from_header.len() <= BOUND);
        assert_eq!(
            from_header, key,
            "the same id in the header or the body: one session"
        );

        let t = table(&["a", "b", "c", "d"]);
        let r = t.route("r").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let just_over = "u".repeat(MAX_SESSION_BYTES);
        for i in 0..200 {
            let s = session_of(&chat(&format!("{i}{just_over}")), &[]).unwrap();
            assert_eq!(rendezvous(r, &t, &s), rendezvous(r, &t, &s));
            seen.insert(rendezvous(r, &t, &s).unwrap());
        }
        assert_eq!(
            seen.len(),
            4,
            "long sessions still spread over every deployment"
        );
    }

    #[test]
    fn a_short_session_is_kept_as_it_is() {
        let at_limit = "s".repeat(MAX_SESSION_BYTES);
        assert_eq!(
            session_of(&chat(&at_limit), &[]).as_deref(),
            Some(at_limit.as_str())
        );
        assert_eq!(
            session_of(&chat("user-42"), &[]).as_deref(),
            Some("user-42")
        );
        assert_eq!(
            session_of(&chat("user-42"), &header(" s-1 ")).as_deref(),
            Some("s-1")
        );
        assert_eq!(session_of(&chat(""), &header("")), None);
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
