//! Whether a request on a caching route uses the cache.
//!
//! Invariant: the cache is read and written only when the client did not opt out
//! (`cache-control: no-cache` / `no-store`, or `x-router-cache: bypass`) and the answer is
//! meant to be the same every time: `temperature` 0 and no tools, unless the route says
//! `cache_sampled`. An unset temperature counts as sampled: every provider's default is above
//! 0 (OpenAI and Anthropic 1.0, Gemini's models 1.0 or so).

use super::key::{cache_key, Owner};
use crate::api::ChatRequest;
use crate::config::{CachePolicy, CacheScope};
use serde_json::Value;

/// The request header a client sends to skip the cache (`x-router-cache: bypass`); answers on
/// caching routes carry the same header with `hit`, `miss` or `bypass`.
pub const CACHE_HEADER: &str = "x-router-cache";

/// What a request on a caching route does with the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Look the answer up under this key; on a miss, store a storable answer under it.
    Use { key: String, ttl_s: u32 },
    /// Neither read nor written.
    Bypass(Why),
}

impl Decision {
    /// The subrequests the cache costs the request (its lookup and its store), which its
    /// budget pays for before any attempt (`limits.subrequests`).
    pub fn subrequests(&self) -> u32 {
        match self {
            Decision::Use { .. } => crate::resilience::subrequests::CACHE_CALLS,
            Decision::Bypass(_) => 0,
        }
    }
}

/// Why a request bypasses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// `cache-control: no-cache` / `no-store`, or `x-router-cache: bypass`.
    Client,
    /// Temperature above 0 (or unset), or tools, on a route without `cache_sampled`.
    Sampled,
}

/// The decision for `chat` on a route with `policy`; `key_id` is the caller's gateway key.
/// `headers` have lower-case names.
pub fn decide(
    policy: &CachePolicy,
    route: &str,
    key_id: Option<&str>,
    chat: &ChatRequest,
    headers: &[(String, String)],
) -> Decision {
    if client_opted_out(headers) {
        return Decision::Bypass(Why::Client);
    }
    if !policy.cache_sampled && sampled(chat) {
        return Decision::Bypass(Why::Sampled);
    }
    let owner = match (policy.scope, key_id) {
        (CacheScope::Key, Some(id)) => Owner::Key(id),
        _ => Owner::Everyone,
    };
    Decision::Use {
        key: cache_key(route, owner, chat),
        ttl_s: policy.ttl_s,
    }
}

/// The client asked not to be served from (or stored in) the cache.
pub fn client_opted_out(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| match k.as_str() {
        "cache-control" => v.split(',').any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        }),
        CACHE_HEADER => v.trim().eq_ignore_ascii_case("bypass"),
        _ => false,
    })
}

/// The answer may differ from one call to the next: temperature above 0 or unset, or tools
/// (the model chooses whether and how to call them).
pub fn sampled(chat: &ChatRequest) -> bool {
    let temperature_zero = match chat.body.get("temperature") {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    };
    let has = |field: &str| match chat.body.get(field) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    !temperature_zero || has("tools") || has("functions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_chat_request;

    fn chat(body: &str) -> ChatRequest {
        parse_chat_request(body.as_bytes()).unwrap()
    }

    const POLICY: CachePolicy = CachePolicy {
        ttl_s: 60,
        scope: CacheScope::Key,
        cache_sampled: false,
    };
    const T0: &str = r#"{"model":"r","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;

    fn h(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.to_string(), v.to_string())]
    }

    #[test]
    fn a_deterministic_request_uses_the_cache_under_its_keys_scope() {
        let c = chat(T0);
        let Decision::Use { key, ttl_s } = decide(&POLICY, "r", Some("k1"), &c, &[]) else {
            panic!("expected Use")
        };
        assert_eq!(ttl_s, 60);
        assert_eq!(key, cache_key("r", Owner::Key("k1"), &c));
        let shared = CachePolicy {
            scope: CacheScope::Shared,
            ..POLICY
        };
        let Decision::Use { key, .. } = decide(&shared, "r", Some("k1"), &c, &[]) else {
            panic!("expected Use")
        };
        assert_eq!(key, cache_key("r", Owner::Everyone, &c));
        let Decision::Use { key, .. } = decide(&POLICY, "r", None, &c, &[]) else {
            panic!("expected Use")
        };
        assert_eq!(
            key,
            cache_key("r", Owner::Everyone, &c),
            "open mode: one caller"
        );
    }

    #[test]
    fn the_client_can_skip_the_cache() {
        let c = chat(T0);
        for headers in [
            h("cache-control", "no-cache"),
            h("cache-control", "max-age=0, No-Store"),
            h(CACHE_HEADER, "bypass"),
            h(CACHE_HEADER, " BYPASS "),
        ] {
            assert_eq!(
                decide(&POLICY, "r", None, &c, &headers),
                Decision::Bypass(Why::Client),
                "{headers:?}"
            );
        }
        for headers in [h("cache-control", "max-age=60"), h(CACHE_HEADER, "hit")] {
            assert!(matches!(
                decide(&POLICY, "r", None, &c, &headers),
                Decision::Use { .. }
            ));
        }
    }

    #[test]
    fn sampled_requests_are_cached_only_with_cache_sampled() {
        for body in [
            r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0.7,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"r","temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}"#,
        ] {
            let c = chat(body);
            assert_eq!(
                decide(&POLICY, "r", None, &c, &[]),
                Decision::Bypass(Why::Sampled),
                "{body}"
            );
            let sampled_ok = CachePolicy {
                cache_sampled: true,
                ..POLICY
            };
            assert!(matches!(
                decide(&sampled_ok, "r", None, &c, &[]),
                Decision::Use { .. }
            ));
        }
        assert!(!sampled(&chat(
            r#"{"model":"r","temperature":0.0,"tools":[],"messages":[{"role":"user","content":"hi"}]}"#
        )));
    }
}
