//! Validation of the degradation block (`state::degradation`): `defaults.degradation` first,
//! then each deployment's `degradation` overriding it field by field. `"off"` switches it off.
//!
//! ```json
//! "degradation": {"latency_factor": 2, "error_rate": 0.02, "timeout_rate": 0.01,
//!                 "recent_ms": 300000, "baseline_ms": 3600000, "min_recent": 20,
//!                 "min_baseline": 50, "recovery_share": 0.05}
//! ```

use super::check::Errors;
use crate::state::degradation::DegradeConfig;
use serde_json::Value;

const FIELDS: [&str; 9] = [
    "enabled",
    "latency_factor",
    "error_rate",
    "timeout_rate",
    "recent_ms",
    "baseline_ms",
    "min_recent",
    "min_baseline",
    "recovery_share",
];

/// `raw` on top of `base`.
pub(super) fn degradation(
    path: &str,
    raw: Option<&Value>,
    base: &DegradeConfig,
    errs: &mut Errors,
) -> DegradeConfig {
    let o = match raw {
        None => return *base,
        Some(Value::String(s)) if s == "off" => return DegradeConfig::off(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            errs.push(path, "must be \"off\" or an object");
            return *base;
        }
    };
    for k in o.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errs.push(
            &format!("{path}.{k}"),
            format!("unknown field (known: {})", FIELDS.join(", ")),
        );
    }
    let mut c = *base;
    let mut number = |field: &str, min: f64, max: f64| -> Option<f64> {
        let v = o.get(field)?;
        match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                errs.push(
                    &format!("{path}.{field}"),
                    format!("must be a number from {min} to {max}"),
                );
                None
            }
        }
    };
    if let Some(f) = number("latency_factor", 1.1, 100.0) {
        c.latency_factor_pct = (f * 100.0).round() as u32;
    }
    if let Some(r) = number("error_rate", 0.0, 1.0) {
        c.error_rate_bps = (r * 10_000.0).round() as u32;
    }
    if let Some(r) = number("timeout_rate", 0.0, 1.0) {
        c.timeout_rate_bps = (r * 10_000.0).round() as u32;
    }
    if let Some(r) = number("recovery_share", 0.0, 1.0) {
        c.recovery_share_bps = (r * 10_000.0).round() as u32;
    }
    if let Some(ms) = number("recent_ms", 1_000.0, 86_400_000.0) {
        c.recent_ms = ms as u64;
    }
    if let Some(ms) = number("baseline_ms", 1_000.0, 604_800_000.0) {
        c.baseline_ms = ms as u64;
    }
    if let Some(n) = number("min_recent", 1.0, 1_000_000.0) {
        c.min_recent = n as u32;
    }
    if let Some(n) = number("min_baseline", 1.0, 1_000_000.0) {
        c.min_baseline = n as u32;
    }
    match o.get("enabled") {
        None => {}
        Some(Value::Bool(b)) => c.enabled = *b,
        Some(_) => errs.push(&format!("{path}.enabled"), "must be true or false"),
    }
    if c.baseline_ms < c.recent_ms {
        errs.push(
            &format!("{path}.baseline_ms"),
            "must not be below recent_ms",
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use crate::config::parse_table;
    use crate::state::degradation::DegradeConfig;
    use serde_json::{json, Value};

    fn table(defaults: Value, dep: Value) -> Result<crate::config::RoutingTable, Vec<String>> {
        let mut d = json!({"provider": "mock", "model": "m", "context_window": 1000});
        if !dep.is_null() {
            d["degradation"] = dep;
        }
        let mut t = json!({
            "version": 1,
            "providers": {"mock": {"kind": "mock"}},
            "deployments": {"a": d},
            "routes": {"r": {"chain": ["a"]}},
        });
        if !defaults.is_null() {
            t["defaults"] = json!({"degradation": defaults});
        }
        parse_table(&t.to_string())
    }

    fn of(defaults: Value, dep: Value) -> DegradeConfig {
        table(defaults, dep).unwrap().deployments[0].degradation
    }

    #[test]
    fn on_by_default_with_the_documented_thresholds() {
        let c = of(Value::Null, Value::Null);
        assert_eq!(c, DegradeConfig::default());
        assert!(c.enabled);
        assert_eq!(
            (c.latency_factor_pct, c.error_rate_bps, c.timeout_rate_bps),
            (200, 200, 100)
        );
    }

    #[test]
    fn deployments_override_the_defaults_field_by_field_and_off_switches_it_off() {
        let c = of(
            json!({"latency_factor": 3, "error_rate": 0.05, "recent_ms": 60000}),
            json!({"error_rate": 0.1, "recovery_share": 0.2}),
        );
        assert_eq!(c.latency_factor_pct, 300);
        assert_eq!(c.error_rate_bps, 1_000);
        assert_eq!(c.recent_ms, 60_000);
        assert_eq!(c.recovery_share_bps, 2_000);
        assert_eq!(c.timeout_rate_bps, 100);
        assert!(!of(Value::Null, json!("off")).enabled);
        assert!(!of(json!("off"), Value::Null).enabled);
        assert!(of(json!("off"), json!({"enabled": true})).enabled);
    }

    #[test]
    fn bad_values_are_named_by_path() {
        let e = table(
            json!({"error_rate": 2, "speed": 1}),
            json!({"latency_factor": 0.5, "baseline_ms": 2000, "recent_ms": 5000}),
        )
        .unwrap_err()
        .join("\n");
        for want in [
            "defaults.degradation.error_rate",
            "defaults.degradation.speed: unknown field",
            "deployments.a.degradation.latency_factor",
            "deployments.a.degradation.baseline_ms: must not be below recent_ms",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
        let e = table(Value::Null, json!(5)).unwrap_err().join("\n");
        assert!(e.contains("deployments.a.degradation: must be \"off\" or an object"));
    }
}
