//! Redaction of upstream text before it reaches a response or a log line.
//!
//! An upstream's error message is the caller's best clue, so the gateway passes it on; but a
//! hostile or careless upstream may quote the key it was sent ("Incorrect API key provided:
//! sk-…"). Every upstream error goes through a `Redactor` when the engine receives it: the
//! secret values the worker holds (provider keys, the admin token) are replaced, and so is
//! anything shaped like a bearer token or an API key; the message is then capped.

use crate::config::{ProviderKind, RoutingTable};
use crate::providers::Secrets;
use crate::resilience::UpstreamError;
use regex_lite::{Captures, Regex};
use std::sync::OnceLock;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Longest upstream message passed on, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Shorter secret values are not real keys; replacing them would garble ordinary words.
const MIN_SECRET_LEN: usize = 6;

/// The secret values to scrub, longest first (so a key containing another is replaced whole).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .map(|v| v.trim().to_string())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Redactor { values }
    }

    /// Every provider key the table names, plus the secrets' own extras (the admin token).
    pub fn for_table(table: &RoutingTable, secrets: &dyn Secrets) -> Self {
        let names = table.providers.iter().filter_map(|p| match &p.kind {
            ProviderKind::OpenAi(o) => o.http.api_key_secret.as_deref(),
            ProviderKind::Anthropic(a) => a.http.api_key_secret.as_deref(),
            ProviderKind::Gemini(g) => g.api_key_secret.as_deref(),
            ProviderKind::Mock(_) => None,
        });
        // The alerts' webhook URL is a credential too.
        let names = names.chain(table.alerts.as_ref().map(|a| a.secret.as_str()));
        let mut values: Vec<String> = names.filter_map(|n| secrets.get(n)).collect();
        values.extend(secrets.extra_values());
        Redactor::new(values)
    }

    /// `text` without secrets or key-shaped strings, capped at `MAX_MESSAGE_CHARS`.
    pub fn message(&self, text: &str) -> String {
        cap(&self.scrub(text), MAX_MESSAGE_CHARS)
    }

    /// `text` without secrets or key-shaped strings (not capped: bodies are parsed later).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        scrub_patterns(&out)
    }

    /// The error with its message and body scrubbed.
    pub fn error(&self, mut e: UpstreamError) -> UpstreamError {
        e.message = self.message(&e.message);
        if let Some(body) = e.body.take() {
            e.body = Some(self.scrub(&String::from_utf8_lossy(&body)).into_bytes());
        }
        e
    }
}

/// At most `max` characters, with an ellipsis when something was cut.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text.to_string(),
    }
}

struct Patterns {
    /// `Bearer <token>` / `Basic <token>`.
    scheme: Regex,
    /// `api_key=…`, `"x-api-key": "…"`, `token: …` and the like.
    assignment: Regex,
    /// Well-known key prefixes: OpenAI/Anthropic/DeepSeek `sk-`, Stripe-like `sk_`/`rk_`,
    /// Groq `gsk_`, xAI `xai-`, Google `AIza`, Hugging Face `hf_`, GitHub `ghp_`/`github_pat_`.
    prefixed: Regex,
    /// Any long run of key characters (checked further in `looks_random`).
    long: Regex,
}

fn patterns() -> Option<&'static Patterns> {
    static P: OnceLock<Option<Patterns>> = OnceLock::new();
    P.get_or_init(|| {
        Some(Patterns {
            scheme: Regex::new(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}").ok()?,
            assignment: Regex::new(
                r#"(?i)\b((?:x-)?(?:goog-)?api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|token)(["']?\s*[:=]\s*["']?)([^\s"',;&)}\]]{6,})"#,
            )
            .ok()?,
            prefixed: Regex::new(
                r"\b(?:sk|rk|pk)[-_][A-Za-z0-9_-]{12,}|\b(?:gsk|hf|ghp|gho|github_pat)_[A-Za-z0-9_]{12,}|\bxai-[A-Za-z0-9_-]{12,}|\bAIza[0-9A-Za-z_-]{20,}",
            )
            .ok()?,
            long: Regex::new(r"[A-Za-z0-9_-]{24,}").ok()?,
        })
    })
    .as_ref()
}

fn scrub_patterns(text: &str) -> String {
    let Some(p) = patterns() else {
        return text.to_string();
    };
    let out = p
        .scheme
        .replace_all(text, |c: &Captures| format!("{}{}{REDACTED}", &c[1], &c[2]));
    let out = p
        .assignment
        .replace_all(&out, |c: &Captures| format!("{}{}{REDACTED}", &c[1], &c[2]));
    let out = p.prefixed.replace_all(&out, REDACTED);
    let out = p.long.replace_all(&out, |c: &Captures| {
        let word = &c[0];
        if looks_random(word) {
            REDACTED.to_string()
        } else {
            word.to_string()
        }
    });
    out.into_owned()
}

/// A key-like word: upper and lower case letters and digits mixed (model names, request ids
/// in one case, words and UUIDs are left alone), or 40+ letters and digits without a
/// separator.
fn looks_random(word: &str) -> bool {
    let upper = word.bytes().any(|b| b.is_ascii_uppercase());
    let lower = word.bytes().any(|b| b.is_ascii_lowercase());
    let digit = word.bytes().any(|b| b.is_ascii_digit());
    let alnum_only = word.bytes().all(|b| b.is_ascii_alphanumeric());
    (upper && lower && digit) || (alnum_only && word.len() >= 40 && digit && (upper || lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new(["sk-fake-secret-123".to_string(), "admin-tok".to_string()])
    }

    #[test]
    fn known_values_are_replaced_wherever_they_appear() {
        let m = r().message("Incorrect API key provided: sk-fake-secret-123. admin-tok!");
        assert!(
            !m.contains("sk-fake-secret-123") && !m.contains("admin-tok"),
            "{m}"
        );
        assert_eq!(m.matches(REDACTED).count(), 2);
    }

    #[test]
    fn key_shaped_strings_are_replaced() {
        let cases = [
            "Authorization: Bearer abcdefghijklmnop",
            "key sk-proj-AbCdEf0123456789xyz was revoked",
            "x-api-key: 0123456789abcdef",
            "{\"api_key\": \"whatever-it-is\"}",
            "gsk_0123456789abcdefABCD is invalid",
            "AIzaSyA-0123456789abcdefghijklmnopq bad",
            "token=deadbeefcafe0123",
            "key 9fQ2xL7pV3mK8sR1tY6wZ4nB0cJ5hD is wrong",
        ];
        for c in cases {
            let m = Redactor::default().message(c);
            assert!(m.contains(REDACTED), "{c} → {m}");
        }
        let m = Redactor::default().message("Bearer abcdefghijklmnop");
        assert_eq!(m, "Bearer [redacted]");
    }

    #[test]
    fn ordinary_error_text_is_kept() {
        let cases = [
            "Rate limit reached for gpt-4o-mini in organization org-fake on tokens per min.",
            "model claude-3-5-sonnet-20241022-extended-thinking not found",
            "request 123e4567-e89b-12d3-a456-426614174000 failed",
            "This model's maximum context length is 16385 tokens.",
            "Please provide a valid token count",
        ];
        for c in cases {
            assert_eq!(Redactor::default().message(c), c);
        }
    }

    #[test]
    fn long_messages_are_capped_on_a_character_boundary() {
        let m = Redactor::default().message(&"é".repeat(2000));
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn short_values_are_not_treated_as_secrets_and_longest_wins() {
        let red = Redactor::new([
            "abc".to_string(),
            "secret-one".into(),
            "secret-one-two".into(),
        ]);
        assert_eq!(red.message("abc secret-one-two"), format!("abc {REDACTED}"));
    }

    #[test]
    fn error_bodies_are_scrubbed_but_stay_json() {
        let mut e = UpstreamError::new(
            crate::resilience::ErrorClass::AuthError,
            "bad key sk-fake-secret-123",
        );
        e.body = Some(
            br#"{"error":{"message":"bad key sk-fake-secret-123","code":"invalid_api_key"}}"#
                .to_vec(),
        );
        let e = r().error(e);
        assert!(!e.message.contains("sk-fake"));
        let body: serde_json::Value =
            serde_json::from_slice(e.body.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(!body.to_string().contains("sk-fake"));
    }
}
