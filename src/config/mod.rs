//! Routing-table configuration: a JSON document (kept in Workers KV) parsed in two phases,
//! raw serde types first, then validation into typed config with path-named errors.

mod alerts;
mod check;
mod degradation;
pub mod diff;
pub mod embedding;
mod health;
pub mod money;
mod policies;
mod probe;
mod problems;
mod providers;
mod raw;
mod routes;
mod tasks;
mod types;
mod validate;

pub use policies::{DEFAULT_RETRY, DEFAULT_TIMEOUTS};
pub use problems::Problem;
pub use providers::{ANTHROPIC_BASE_URL, ANTHROPIC_VERSION, GEMINI_BASE_URL};
pub use routes::{MAX_STICKY_TTL_MS, MAX_WEIGHT};
pub use tasks::MAX_RULES;
pub use types::*;
pub use validate::DEFAULT_REQUEST_TIMEOUT_MS;

/// The table served when KV holds none: mock providers only, so the gateway answers with no keys.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default-routing-table.json");

/// Parses and validates a routing table. On failure returns every problem found, each
/// naming the JSON path it concerns (none for a syntax error).
pub fn parse(json: &str) -> Result<RoutingTable, Vec<Problem>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let raw: raw::RawTable = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            vec![Problem::syntax(inner)]
        } else {
            vec![Problem::at(path, inner)]
        }
    })?;
    // One document: nothing but whitespace may follow the table (a second table pasted after
    // the first, or the tail of an edit, would otherwise be ignored).
    de.end().map_err(|e| vec![Problem::syntax(e)])?;
    validate::validate(raw)
}

/// [`parse`], with each problem as text: `<path>: <message>`, or
/// `invalid routing table JSON: <detail>` for a syntax error.
pub fn parse_table(json: &str) -> Result<RoutingTable, Vec<String>> {
    parse(json).map_err(|problems| problems.iter().map(Problem::to_string).collect())
}
