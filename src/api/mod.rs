//! Client-facing wire types (OpenAI chat completions, Anthropic Messages, OpenAI Responses) and
//! the gateway's own error bodies.

pub mod anthropic;
pub mod chat;
pub mod cors;
pub mod count_tokens;
pub mod embeddings;
pub mod error;
mod fields;
pub mod models;
pub mod responses;
mod responses_input;

pub use chat::{parse_chat_request, ChatRequest, ClientFormat};
pub use error::ApiError;

/// The path of an absolute request URL (as the runtime's `Request.url` gives it), without
/// its query or fragment; `/` when it has none. Not decoded: routes compare it as sent.
pub fn url_path(url: &str) -> &str {
    let rest = url
        .find("://")
        .map_or(url, |i| url.get(i + 3..).unwrap_or(""));
    // The authority ends at the first `/`, `?` or `#`; only a `/` starts a path.
    let path = match rest.find(['/', '?', '#']) {
        Some(i) if rest.get(i..i + 1) == Some("/") => rest.get(i..).unwrap_or("/"),
        _ => "/",
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn the_path_of_a_request_url() {
        assert_eq!(
            url_path("https://gw.example/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(
            url_path("http://127.0.0.1:8787/v1/messages?beta=true"),
            "/v1/messages"
        );
        assert_eq!(url_path("https://h/a%2Fb#frag"), "/a%2Fb");
        assert_eq!(url_path("https://h"), "/");
        assert_eq!(url_path("https://h?x=/y"), "/");
    }
}
