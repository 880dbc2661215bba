//! Gateway (virtual) keys: how a caller's key is found (only its SHA-256 is stored, in KV
//! under `gateway-key:<hex>`), what the record allows, and the reservation a request makes
//! against the key's limits before it is sent.

use crate::api::ChatRequest;
use crate::config::money::usd_to_nanos;
use crate::config::{Route, RoutingTable};
use crate::state::quota::{Estimate, Limits};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// KV key prefix of gateway-key records.
pub const KV_PREFIX: &str = "gateway-key:";

/// Lower-case hex SHA-256 of the key as the client sends it.
pub fn hash_key(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller's key: `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key`
/// (Anthropic clients). Empty values count as absent.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|v| {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    bearer
        .or(x_api_key.map(str::trim))
        .filter(|k| !k.is_empty())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyRecord {
    name: String,
    /// Routes (model names) this key may use; absent = all.
    routes: Option<Vec<String>>,
    rpm: Option<u32>,
    tpm: Option<u64>,
    budget_day_usd: Option<Value>,
    budget_month_usd: Option<Value>,
    #[serde(default)]
    revoked: bool,
    /// Accepted for the admin API's bookkeeping; not used for routing.
    #[allow(dead_code)]
    created_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The SHA-256 hex of the key: its id, and the name of its Durable Object.
    pub id: String,
    pub name: String,
    pub routes: Option<Vec<String>>,
    pub limits: Limits,
    pub revoked: bool,
}

impl KeyRecord {
    pub fn parse(id: &str, json: &str) -> Result<KeyRecord, String> {
        let raw: RawKeyRecord =
            serde_json::from_str(json).map_err(|e| format!("gateway key record: {e}"))?;
        let money = |v: &Option<Value>, field: &str| -> Result<Option<u64>, String> {
            v.as_ref()
                .map(|v| usd_to_nanos(v).map_err(|e| format!("gateway key record: {field}: {e}")))
                .transpose()
        };
        Ok(KeyRecord {
            id: id.to_string(),
            name: raw.name,
            routes: raw.routes,
            limits: Limits {
                rpm: raw.rpm,
                tpm: raw.tpm,
                budget_day_nanos: money(&raw.budget_day_usd, "budget_day_usd")?,
                budget_month_nanos: money(&raw.budget_month_usd, "budget_month_usd")?,
            },
            revoked: raw.revoked,
        })
    }

    pub fn allows(&self, route: &str) -> bool {
        self.routes
            .as_ref()
            .is_none_or(|r| r.iter().any(|name| name == route))
    }

    /// Whether requests must be admitted by the key's object (a limit or budget is set).
    pub fn is_limited(&self) -> bool {
        self.limits != Limits::default()
    }
}

/// The tokens a request may use at most: its prompt (about 4 characters per token) and its
/// output limit, or the table's `estimated_output_tokens` when it sets none.
pub fn estimated_usage(req: &ChatRequest, table: &RoutingTable) -> Usage {
    let output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.body.get(*k).and_then(Value::as_u64))
        .unwrap_or(u64::from(table.estimated_output_tokens));
    Usage {
        prompt_tokens: (req.prompt_chars as u64).div_ceil(4).max(1),
        completion_tokens: output,
        ..Usage::default()
    }
}

/// What a request may cost at most, reserved before it is sent: the prompt (about 4
/// characters per token) plus its output limit (or the table's estimate when it sets none),
/// priced at the dearest deployment of the route, since any of them may answer.
pub fn estimate(req: &ChatRequest, route: &Route, table: &RoutingTable) -> Estimate {
    let usage = estimated_usage(req, table);
    let cost_nanos = route
        .chain
        .steps()
        .iter()
        .filter_map(|s| table.deployment(s.deployment))
        .map(|d| usage.cost_nanos(&d.price))
        .max()
        .unwrap_or(0);
    Estimate {
        tokens: usage.prompt_tokens.saturating_add(usage.completion_tokens),
        cost_nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn key_from_either_header() {
        assert_eq!(presented_key(Some("Bearer sk-1"), None), Some("sk-1"));
        assert_eq!(presented_key(Some("bearer  sk-1 "), None), Some("sk-1"));
        assert_eq!(presented_key(None, Some("sk-2")), Some("sk-2"));
        assert_eq!(presented_key(Some("Basic xyz"), Some("sk-3")), Some("sk-3"));
        assert_eq!(presented_key(Some("Bearer "), None), None);
        assert_eq!(presented_key(None, None), None);
    }

    #[test]
    fn record_parses_limits_in_nano_usd() {
        let r = KeyRecord::parse(
            "h",
            r#"{"name":"team-a","routes":["small"],"rpm":5,"budget_day_usd":"0.25"}"#,
        )
        .unwrap();
        assert_eq!(r.limits.rpm, Some(5));
        assert_eq!(r.limits.budget_day_nanos, Some(250_000_000));
        assert!(r.allows("small") && !r.allows("large"));
        assert!(r.is_limited());
        let open = KeyRecord::parse("h", r#"{"name":"x"}"#).unwrap();
        assert!(open.allows("anything") && !open.is_limited());
        assert!(KeyRecord::parse("h", r#"{"name":"x","rmp":1}"#).is_err());
        assert!(KeyRecord::parse("h", r#"{"name":"x","budget_day_usd":"-1"}"#).is_err());
    }
}
