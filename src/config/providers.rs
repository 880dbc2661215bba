//! Validation of `providers.<name>`: the kind decides which fields are allowed and required.

use super::check::Errors;
use super::raw::{RawMock, RawProvider};
use super::types::{
    AnthropicProvider, HttpProvider, MockProvider, OpenAiProvider, PrefillSupport, ProviderKind,
};

pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
pub const ANTHROPIC_MAX_TOKENS: u32 = 4096;
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";
const KINDS: &str = "\"openai\", \"anthropic\", \"gemini\", \"mock\"";

pub(super) fn provider_kind(
    path: &str,
    p: &RawProvider,
    errs: &mut Errors,
) -> Option<ProviderKind> {
    only_for_kinds(path, p, errs);
    match p.kind.as_str() {
        "openai" => openai(path, p, errs).map(ProviderKind::OpenAi),
        "gemini" => http(path, p, Some(GEMINI_BASE_URL), errs).map(ProviderKind::Gemini),
        "anthropic" => anthropic(path, p, errs).map(ProviderKind::Anthropic),
        "mock" => Some(ProviderKind::Mock(mock(path, p.mock.as_ref(), errs))),
        other => {
            errs.push(
                &format!("{path}.kind"),
                format!("unknown kind {other:?} (known: {KINDS})"),
            );
            None
        }
    }
}

/// Fields only some kinds read: set for another kind, they are an error, not ignored.
fn only_for_kinds(path: &str, p: &RawProvider, errs: &mut Errors) {
    const HTTP: &[&str] = &["openai", "anthropic", "gemini"];
    let fields: [(&str, bool, &[&str]); 6] = [
        ("mock", p.mock.is_some(), &["mock"]),
        (
            "anthropic_version",
            p.anthropic_version.is_some(),
            &["anthropic"],
        ),
        (
            "max_tokens_default",
            p.max_tokens_default.is_some(),
            &["anthropic"],
        ),
        ("base_url", p.base_url.is_some(), HTTP),
        ("api_key_secret", p.api_key_secret.is_some(), HTTP),
        ("headers", !p.headers.is_empty(), HTTP),
    ];
    for (field, present, allowed) in fields {
        if present && !allowed.contains(&p.kind.as_str()) {
            let list: Vec<String> = allowed.iter().map(|k| format!("{k:?}")).collect();
            errs.push(
                &format!("{path}.{field}"),
                format!("only allowed for kind {}", list.join(" or ")),
            );
        }
    }
}

fn openai(path: &str, p: &RawProvider, errs: &mut Errors) -> Option<OpenAiProvider> {
    let http = http(path, p, None, errs)?;
    let max_tokens_field = match p.max_tokens_field.as_deref() {
        None => None,
        Some(f @ ("max_tokens" | "max_completion_tokens")) => Some(f.to_string()),
        Some(other) => {
            errs.push(
                &format!("{path}.max_tokens_field"),
                format!("{other:?} is not \"max_tokens\" or \"max_completion_tokens\""),
            );
            None
        }
    };
    Some(OpenAiProvider {
        http,
        stream_usage: p.stream_usage.unwrap_or(true),
        max_tokens_field,
    })
}

fn anthropic(path: &str, p: &RawProvider, errs: &mut Errors) -> Option<AnthropicProvider> {
    let http = http(path, p, Some(ANTHROPIC_BASE_URL), errs)?;
    let version = p
        .anthropic_version
        .clone()
        .unwrap_or_else(|| ANTHROPIC_VERSION.to_string());
    if version.is_empty() || version.bytes().any(|b| b.is_ascii_control()) {
        errs.push(
            &format!("{path}.anthropic_version"),
            "must be a version string like \"2023-06-01\"",
        );
    }
    let default_max_tokens = match p.max_tokens_default {
        Some(0) => {
            errs.push(&format!("{path}.max_tokens_default"), "must be at least 1");
            ANTHROPIC_MAX_TOKENS
        }
        Some(n) => n,
        None => ANTHROPIC_MAX_TOKENS,
    };
    Some(AnthropicProvider {
        http,
        version,
        default_max_tokens,
    })
}

/// Prefill support: declared for `openai` servers (default none), on by default for
/// `anthropic` and `mock`, never for `gemini`.
pub(super) fn prefill(
    path: &str,
    p: &RawProvider,
    kind: &ProviderKind,
    errs: &mut Errors,
) -> PrefillSupport {
    let default = match kind {
        ProviderKind::Anthropic(_) | ProviderKind::Mock(_) => PrefillSupport::Assistant,
        ProviderKind::OpenAi(_) | ProviderKind::Gemini(_) => PrefillSupport::None,
    };
    let allowed: &[&str] = match kind {
        ProviderKind::OpenAi(_) => &["none", "assistant", "prefix_flag"],
        ProviderKind::Anthropic(_) | ProviderKind::Mock(_) => &["none", "assistant"],
        ProviderKind::Gemini(_) => &["none"],
    };
    match p.prefill.as_deref() {
        None => default,
        Some(v) if !allowed.contains(&v) => {
            errs.push(
                &format!("{path}.prefill"),
                format!(
                    "{v:?} is not supported for kind {:?} (allowed: {allowed:?})",
                    p.kind
                ),
            );
            default
        }
        Some("assistant") => PrefillSupport::Assistant,
        Some("prefix_flag") => PrefillSupport::PrefixFlag,
        Some(_) => PrefillSupport::None,
    }
}

fn http(
    path: &str,
    p: &RawProvider,
    default_url: Option<&str>,
    errs: &mut Errors,
) -> Option<HttpProvider> {
    let base_url = match (p.base_url.as_deref().map(str::trim), default_url) {
        (Some(u), _) if valid_base_url(u) => u.trim_end_matches('/').to_string(),
        (Some(u), _) => {
            errs.push(
                &format!("{path}.base_url"),
                format!("{u:?} is not an http(s) URL"),
            );
            return None;
        }
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            errs.push(
                &format!("{path}.base_url"),
                format!("required for kind {:?}", p.kind),
            );
            return None;
        }
    };
    if let Some(secret) = &p.api_key_secret {
        if secret.is_empty()
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errs.push(
                &format!("{path}.api_key_secret"),
                "must be a Worker secret name (letters, digits, _)",
            );
        }
    }
    let mut headers = Vec::new();
    for (k, v) in &p.headers {
        let hpath = format!("{path}.headers.{k}");
        if k.is_empty() || !k.bytes().all(is_token_byte) {
            errs.push(&hpath, "not a valid header name");
        } else if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            errs.push(&hpath, "header value must not contain CR, LF or NUL");
        } else {
            headers.push((k.to_ascii_lowercase(), v.clone()));
        }
    }
    Some(HttpProvider {
        base_url,
        api_key_secret: p.api_key_secret.clone(),
        headers,
    })
}

fn mock(path: &str, raw: Option<&RawMock>, errs: &mut Errors) -> MockProvider {
    let default = RawMock::default();
    let raw = raw.unwrap_or(&default);
    if let Some(s) = raw.fail_status {
        if !(400..=599).contains(&s) {
            errs.push(
                &format!("{path}.mock.fail_status"),
                "must be an HTTP error status (400-599)",
            );
        }
    }
    let cap = |field: &str, v: Option<u64>, errs: &mut Errors| match v {
        Some(v) if v > 60_000 => {
            errs.push(&format!("{path}.mock.{field}"), "must be at most 60000 ms");
            0
        }
        v => v.unwrap_or(0),
    };
    MockProvider {
        fail_status: raw.fail_status,
        retry_after_s: raw.retry_after_s,
        latency_ms: cap("latency_ms", raw.latency_ms, errs),
        chunk_delay_ms: cap("chunk_delay_ms", raw.chunk_delay_ms, errs),
        cut_after_chunks: raw.cut_after_chunks,
    }
}

fn valid_base_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty()
        && !r.starts_with('/')
        && !r.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        && !r.contains(['?', '#']))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
