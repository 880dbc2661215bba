//! Cross-origin calls from browsers and WebViews (CORS), opt-in by origin in the routing
//! table (`cors.allow_origins`). An origin that is not listed gets no CORS header at all, so
//! the browser keeps the answer from the page; a preflight is answered without a key (the
//! browser sends none with it), and the real request is authenticated as any other.

/// Headers a page may read from an answer: the router's own and the rate-limit ones.
pub const EXPOSED_HEADERS: &str = "x-router-request-id, x-router-route, x-router-attempts, \
x-router-overhead-ms, x-router-deployment, x-router-provider, x-router-model, \
x-router-fallback-reasons, x-router-cost-usd, x-router-hedge, x-router-sticky, retry-after, \
x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, \
x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens";

/// Request headers a preflight allows when the browser names none (what the OpenAI and
/// Anthropic browser SDKs send).
const DEFAULT_ALLOWED_HEADERS: &str = "authorization, content-type, x-api-key, \
anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access, x-router-task, \
x-session-id, openai-organization, openai-project, x-stainless-arch, x-stainless-lang, \
x-stainless-os, x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, \
x-stainless-runtime-version, x-stainless-timeout";

/// How long a browser may reuse a preflight's answer, in seconds.
const MAX_AGE_S: &str = "600";

fn allowed<'a>(origins: &[String], origin: Option<&'a str>) -> Option<&'a str> {
    let origin = origin?;
    origins
        .iter()
        .any(|o| o == "*" || o == origin)
        .then_some(origin)
}

/// The CORS headers of an answer to `origin` (none when it is not allowed).
pub fn response_headers(origins: &[String], origin: Option<&str>) -> Vec<(&'static str, String)> {
    match allowed(origins, origin) {
        Some(o) => vec![
            ("access-control-allow-origin", o.to_string()),
            ("vary", "Origin".to_string()),
            ("access-control-expose-headers", EXPOSED_HEADERS.to_string()),
        ],
        None => Vec::new(),
    }
}

/// The answer to a preflight (`OPTIONS`) from `origin` asking for `requested_headers`
/// (`Access-Control-Request-Headers`): its CORS headers, none when the origin is not
/// allowed. The requested header names are allowed as asked, if they are header names.
pub fn preflight_headers(
    origins: &[String],
    origin: Option<&str>,
    requested_headers: Option<&str>,
) -> Vec<(&'static str, String)> {
    let Some(o) = allowed(origins, origin) else {
        return Vec::new();
    };
    let requested = requested_headers
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
        });
    vec![
        ("access-control-allow-origin", o.to_string()),
        ("vary", "Origin".to_string()),
        (
            "access-control-allow-methods",
            "GET, POST, OPTIONS".to_string(),
        ),
        (
            "access-control-allow-headers",
            requested.unwrap_or(DEFAULT_ALLOWED_HEADERS).to_string(),
        ),
        ("access-control-max-age", MAX_AGE_S.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn only_listed_origins_get_cors_headers() {
        let origins = vec!["https://app.example".to_string()];
        let h = response_headers(&origins, Some("https://app.example"));
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert!(get(&h, "access-control-expose-headers")
            .is_some_and(|v| v.contains("x-router-request-id")));
        assert!(response_headers(&origins, Some("https://evil.example")).is_empty());
        assert!(response_headers(&origins, None).is_empty());
        assert!(
            response_headers(&[], Some("https://app.example")).is_empty(),
            "off by default"
        );
        let any = vec!["*".to_string()];
        assert_eq!(
            get(
                &response_headers(&any, Some("http://localhost:5173")),
                "access-control-allow-origin"
            ),
            Some("http://localhost:5173")
        );
    }

    #[test]
    fn a_preflight_allows_what_the_browser_asks_for_if_it_is_header_names() {
        let origins = vec!["https://app.example".to_string()];
        let h = preflight_headers(
            &origins,
            Some("https://app.example"),
            Some("authorization, content-type"),
        );
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some("GET, POST, OPTIONS")
        );
        let odd = preflight_headers(&origins, Some("https://app.example"), Some("x\r\ny"));
        assert!(
            get(&odd, "access-control-allow-headers").is_some_and(|v| v.contains("authorization"))
        );
        assert!(preflight_headers(&origins, Some("https://other.example"), None).is_empty());
    }
}
