//! Gateway (virtual) keys: how a caller's key is found (only its SHA-256 is stored, in KV
//! under `gateway-key:<hex>`), what the record allows, and the reservation a request makes
//! against the key's limits before it is sent.

use crate::api::ChatRequest;
use crate::config::money::usd_to_nanos;
use crate::config::{Route, RoutingTable};
use crate::state::quota::{Estimate, Limits};
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
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
    /// The record's revision, counted by the key's object (see `apply_edit`).
    #[allow(dead_code)]
    rev: Option<u64>,
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
}

/// A key's record as its object keeps it: the copy every edit and revocation goes through, so
/// that neither can overwrite the other (KV holds a mirror for listing and lookup). Stored in
/// the key's object: explicit wire names (see `state::stored_shapes`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The record's JSON text; None until the first edit through the object (keys created
    /// before objects kept records are adopted from KV then).
    #[serde(rename = "text", default)]
    pub text: Option<String>,
    /// Counts the edits and revocations applied; `If-Match` on PATCH compares with it.
    #[serde(rename = "rev", default)]
    pub rev: u64,
}

impl StoredRecord {
    /// The limits the stored record sets, when the object has one.
    pub fn limits(&self) -> Option<Limits> {
        let text = self.text.as_deref()?;
        KeyRecord::parse("", text).ok().map(|r| r.limits)
    }
}

/// Fields an operator may change on an existing key (`null` removes a limit).
pub const EDITABLE_FIELDS: [&str; 6] = [
    "name",
    "routes",
    "rpm",
    "tpm",
    "budget_day_usd",
    "budget_month_usd",
];

/// An operator's edit of a key record, as its object applies it: `patch` merged into `base`
/// (`null` removes a field), revocation kept (`revoked` comes from the object, never from the
/// patch or a possibly stale copy), and the new revision stamped. The result is validated
/// exactly as requests will read it.
pub fn apply_edit(
    base: &str,
    patch: &Map<String, Value>,
    revoked: bool,
    rev: u64,
) -> Result<String, String> {
    if let Some(bad) = patch
        .keys()
        .find(|k| !EDITABLE_FIELDS.contains(&k.as_str()))
    {
        return Err(format!(
            "{bad:?} cannot be changed (allowed: {})",
            EDITABLE_FIELDS.join(", ")
        ));
    }
    let mut record: Map<String, Value> = match serde_json::from_str(base) {
        Ok(Value::Object(m)) => m,
        _ => return Err("the stored key record is not a JSON object".into()),
    };
    for (k, v) in patch {
        if v.is_null() {
            record.remove(k);
        } else {
            record.insert(k.clone(), v.clone());
        }
    }
    record.remove("revoked");
    if revoked {
        record.insert("revoked".into(), Value::Bool(true));
    }
    record.insert("rev".into(), Value::from(rev));
    let text = Value::Object(record).to_string();
    KeyRecord::parse("", &text)?;
    Ok(text)
}

/// For a key whose tokens or spend are limited, a request that sets no output limit gets one:
/// the output tokens its reservation counts (the table's `estimated_output_tokens`, see
/// `estimated_usage`), as `max_tokens` (each provider's own field is set from it). An answer
/// then cannot cost more output than was reserved, so concurrent requests cannot overshoot a
/// budget by long answers. Returns the limit it set.
pub fn cap_output(req: &mut ChatRequest, key: &KeyRecord, table: &RoutingTable) -> Option<u64> {
    let l = &key.limits;
    let limited = l.tpm.is_some() || l.budget_day_nanos.is_some() || l.budget_month_nanos.is_some();
    let given = ["max_completion_tokens", "max_tokens"]
        .iter()
        .any(|k| req.body.get(*k).and_then(Value::as_u64).is_some());
    if !limited || given {
        return None;
    }
    let cap = u64::from(table.estimated_output_tokens);
    req.body.insert("max_tokens".into(), Value::from(cap));
    req.output_cap = Some(cap.saturating_mul(crate::usage::estimate::choices(req)));
    Some(cap)
}

/// The tokens a request may use at most: its prompt (`usage::estimate`) and its
/// output limit, or the table's `estimated_output_tokens` when it sets none.
pub fn estimated_usage(req: &ChatRequest, table: &RoutingTable) -> Usage {
    crate::usage::estimate::at_most(req, table.estimated_output_tokens)
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
        assert_ne!(r.limits, Limits::default());
        let open = KeyRecord::parse("h", r#"{"name":"x"}"#).unwrap();
        assert!(open.allows("anything") && open.limits == Limits::default());
        assert!(KeyRecord::parse("h", r#"{"name":"x","rmp":1}"#).is_err());
        assert!(KeyRecord::parse("h", r#"{"name":"x","budget_day_usd":"-1"}"#).is_err());
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn an_edit_merges_removes_and_never_lifts_revocation() {
        let base = r#"{"name":"a","rpm":5,"tpm":100,"created_ms":1}"#;
        let patch = obj(serde_json::json!({"rpm": 9, "tpm": null, "routes": ["x"]}));
        let out: Value =
            serde_json::from_str(&apply_edit(base, &patch, false, 3).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"name":"a","rpm":9,"routes":["x"],"created_ms":1,"rev":3})
        );
        // A copy that predates the revoke (no `revoked`) still comes out revoked.
        let out = apply_edit(base, &obj(serde_json::json!({"rpm": 1})), true, 4).unwrap();
        assert!(KeyRecord::parse("h", &out).unwrap().revoked);
        // And a copy that says revoked cannot be un-revoked by an edit.
        let revoked_base = r#"{"name":"a","revoked":true}"#;
        let out = apply_edit(revoked_base, &Map::new(), true, 5).unwrap();
        assert!(KeyRecord::parse("h", &out).unwrap().revoked);
    }

    #[test]
    fn an_edit_is_refused_for_unknown_fields_and_invalid_results() {
        let base = r#"{"name":"a"}"#;
        assert!(
            apply_edit(base, &obj(serde_json::json!({"revoked": false})), false, 1)
                .unwrap_err()
                .contains("cannot be changed")
        );
        assert!(apply_edit(base, &obj(serde_json::json!({"rpm": -1})), false, 1).is_err());
        assert!(apply_edit(base, &obj(serde_json::json!({"name": null})), false, 1).is_err());
        assert!(apply_edit("[1]", &Map::new(), false, 1).is_err());
    }

    #[test]
    fn a_budgeted_request_without_an_output_limit_is_capped_at_its_reservation() {
        let table = crate::config::parse_table(
            r#"{"version":1,"providers":{"p":{"kind":"openai","base_url":"http://x/v1"}},
                "deployments":{"d":{"provider":"p","model":"m","context_window":8000}},
                "routes":{"r":{"chain":["d"]}},
                "defaults":{"estimated_output_tokens":20}}"#,
        )
        .unwrap();
        let chat = |body: &str| crate::api::parse_chat_request(body.as_bytes()).unwrap();
        let budgeted = KeyRecord::parse("h", r#"{"name":"b","budget_day_usd":"1"}"#).unwrap();
        let tpm = KeyRecord::parse("h", r#"{"name":"t","tpm":1000}"#).unwrap();
        let rpm_only = KeyRecord::parse("h", r#"{"name":"r","rpm":10}"#).unwrap();
        let plain = r#"{"model":"r","messages":[{"role":"user","content":"hi"}]}"#;
        for key in [&budgeted, &tpm] {
            let mut req = chat(plain);
            assert_eq!(cap_output(&mut req, key, &table), Some(20));
            assert_eq!(req.body["max_tokens"], 20);
            // What is reserved is what is capped.
            assert_eq!(estimated_usage(&req, &table).completion_tokens, 20);
        }
        let mut req = chat(plain);
        assert_eq!(
            cap_output(&mut req, &rpm_only, &table),
            None,
            "no spend limit, no cap"
        );
        assert!(req.body.get("max_tokens").is_none());
        for given in [r#""max_tokens":500"#, r#""max_completion_tokens":7"#] {
            let mut req = chat(&format!(
                r#"{{"model":"r","messages":[{{"role":"user","content":"hi"}}],{given}}}"#
            ));
            assert_eq!(
                cap_output(&mut req, &budgeted, &table),
                None,
                "the client's own limit stands"
            );
        }
    }
}
