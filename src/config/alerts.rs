//! Validation of the `alerts` block (`state::alerts`): the webhook is named by the secret that
//! holds its URL, never by the URL itself.
//!
//! ```json
//! "alerts": {"webhook_url_secret": "ALERT_WEBHOOK_URL",
//!            "events": {"breaker_opened": true, "budget": false},
//!            "fallback_ratio": 0.1, "window_s": 300}
//! ```

use super::check::Errors;
use crate::state::alerts::{
    AlertSettings, Switches, DEFAULT_FALLBACK_RATIO_BPS, DEFAULT_WINDOW_MS,
};
use serde_json::Value;

const FIELDS: [&str; 4] = ["webhook_url_secret", "events", "fallback_ratio", "window_s"];
const EVENTS: [&str; 6] = [
    "breaker_opened",
    "breaker_closed",
    "degraded",
    "recovered",
    "fallback_ratio",
    "budget",
];
/// Longest dedup window: one day.
const MAX_WINDOW_S: u64 = 86_400;

pub(super) fn alerts(raw: Option<&Value>, errs: &mut Errors) -> Option<AlertSettings> {
    let o = match raw? {
        Value::Object(o) => o,
        _ => {
            errs.push("alerts", "must be an object");
            return None;
        }
    };
    for k in o.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errs.push(
            &format!("alerts.{k}"),
            format!("unknown field (known: {})", FIELDS.join(", ")),
        );
    }
    let secret = match o.get("webhook_url_secret") {
        Some(Value::String(s)) if secret_name(s) => s.clone(),
        _ => {
            errs.push(
                "alerts.webhook_url_secret",
                "must name the secret holding the webhook URL (letters, digits, _), not the URL",
            );
            String::new()
        }
    };
    let mut events = Switches::default();
    match o.get("events") {
        None => {}
        Some(Value::Object(e)) => {
            for (k, v) in e {
                let path = format!("alerts.events.{k}");
                let Some(on) = v.as_bool() else {
                    errs.push(&path, "must be true or false");
                    continue;
                };
                match k.as_str() {
                    "breaker_opened" => events.breaker_opened = on,
                    "breaker_closed" => events.breaker_closed = on,
                    "degraded" => events.degraded = on,
                    "recovered" => events.recovered = on,
                    "fallback_ratio" => events.fallback_ratio = on,
                    "budget" => events.budget = on,
                    _ => errs.push(
                        &path,
                        format!("unknown event (known: {})", EVENTS.join(", ")),
                    ),
                }
            }
        }
        Some(_) => errs.push("alerts.events", "must be an object of event: true/false"),
    }
    let fallback_ratio_bps = match o.get("fallback_ratio") {
        None => DEFAULT_FALLBACK_RATIO_BPS,
        Some(v) => match v.as_f64() {
            Some(r) if r > 0.0 && r <= 1.0 => (r * 10_000.0).round() as u32,
            _ => {
                errs.push(
                    "alerts.fallback_ratio",
                    "must be a number above 0 and at most 1",
                );
                DEFAULT_FALLBACK_RATIO_BPS
            }
        },
    };
    let window_ms = match o.get("window_s") {
        None => DEFAULT_WINDOW_MS,
        Some(v) => match v.as_u64() {
            Some(s) if (1..=MAX_WINDOW_S).contains(&s) => s * 1_000,
            _ => {
                errs.push(
                    "alerts.window_s",
                    format!("must be a whole number of seconds from 1 to {MAX_WINDOW_S}"),
                );
                DEFAULT_WINDOW_MS
            }
        },
    };
    Some(AlertSettings {
        secret,
        events,
        window_ms,
        fallback_ratio_bps,
    })
}

fn secret_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> (Option<AlertSettings>, Vec<String>) {
        let mut errs = Errors::default();
        let s = alerts(Some(&v), &mut errs);
        let paths = errs
            .into_problems()
            .into_iter()
            .map(|p| p.path.clone())
            .collect();
        (s, paths)
    }

    #[test]
    fn defaults_and_overrides() {
        let (s, errs) = check(json!({"webhook_url_secret": "ALERT_WEBHOOK_URL"}));
        assert!(errs.is_empty());
        let s = s.unwrap_or_else(|| panic!("settings"));
        assert_eq!(s.window_ms, 300_000);
        assert_eq!(s.fallback_ratio_bps, 1_000);
        assert_eq!(s.events, Switches::default());
        let (s, errs) = check(
            json!({"webhook_url_secret": "HOOK", "events": {"budget": false},
            "fallback_ratio": 0.25, "window_s": 2}),
        );
        assert!(errs.is_empty());
        let s = s.unwrap_or_else(|| panic!("settings"));
        assert!(!s.events.budget && s.events.breaker_opened);
        assert_eq!((s.window_ms, s.fallback_ratio_bps), (2_000, 2_500));
    }

    /// The README's `alerts` example validates, with every event on.
    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("## Alerts")
            .nth(1)
            .and_then(|s| s.split("```json\n").nth(1))
            .and_then(|s| s.split("\n```").next())
            .unwrap_or_else(|| panic!("README: no alerts example"));
        let v: Value = serde_json::from_str(&format!("{{{block}}}"))
            .unwrap_or_else(|e| panic!("README alerts example: {e}"));
        let (s, errs) = check(v["alerts"].clone());
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.map(|s| s.events), Some(Switches::default()));
    }

    #[test]
    fn errors_name_their_path() {
        let (_, errs) = check(json!({"webhook_url_secret": "https://hooks.example/x",
            "events": {"nope": true, "budget": 1}, "fallback_ratio": 2, "window_s": 0, "x": 1}));
        for p in [
            "alerts.webhook_url_secret",
            "alerts.events.nope",
            "alerts.events.budget",
            "alerts.fallback_ratio",
            "alerts.window_s",
            "alerts.x",
        ] {
            assert!(errs.iter().any(|e| e == p), "{p} in {errs:?}");
        }
        let (_, errs) = check(json!("HOOK"));
        assert_eq!(errs, vec!["alerts".to_string()]);
    }
}
