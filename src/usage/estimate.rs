//! Token estimates where no provider count exists yet (admission before a request is sent,
//! routing by prompt size, the mock's usage) or ever will (a stream cut before its usage
//! event): about 4 characters per token. The one place that ratio is written.

use super::Usage;
use crate::api::ChatRequest;
use serde_json::Value;

/// Characters per token, the usual rough figure for English text.
const CHARS_PER_TOKEN: u64 = 4;

/// Tokens in `chars` characters of text, rounded up (0 for no text).
pub fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(CHARS_PER_TOKEN)
}

/// The request's prompt tokens: at least 1, since every request has a prompt.
pub fn prompt_tokens(req: &ChatRequest) -> u64 {
    tokens(req.prompt_chars).max(1)
}

/// The tokens a request may use at most: its prompt and its output limit
/// (`max_completion_tokens`, else `max_tokens`), or `default_output` when it sets none.
pub fn at_most(req: &ChatRequest, default_output: u32) -> Usage {
    let output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.body.get(*k).and_then(Value::as_u64))
        .unwrap_or(u64::from(default_output));
    Usage {
        prompt_tokens: prompt_tokens(req),
        completion_tokens: output,
        ..Usage::default()
    }
}

/// An attempt whose usage the provider never reported: the prompt, and `answer_chars`
/// characters of answer.
pub fn unreported(req: &ChatRequest, answer_chars: usize) -> Usage {
    Usage {
        prompt_tokens: prompt_tokens(req),
        completion_tokens: tokens(answer_chars),
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_chat_request;

    fn req(body: &str) -> ChatRequest {
        parse_chat_request(body.as_bytes()).expect("request")
    }

    #[test]
    fn about_four_characters_per_token_rounded_up() {
        assert_eq!((tokens(0), tokens(1), tokens(4), tokens(5)), (0, 1, 1, 2));
    }

    #[test]
    fn the_most_a_request_may_use_is_its_prompt_and_its_output_limit() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"12345678"}],"max_tokens":7}"#,
        );
        let u = at_most(&r, 500);
        assert_eq!(u.prompt_tokens, prompt_tokens(&r));
        assert!(u.prompt_tokens >= 2);
        assert_eq!(u.completion_tokens, 7);
        let r = req(r#"{"model":"m","messages":[{"role":"user","content":""}]}"#);
        assert_eq!(at_most(&r, 500).completion_tokens, 500);
        assert_eq!(prompt_tokens(&r).min(1), 1, "never zero");
    }

    #[test]
    fn an_unreported_answer_counts_its_characters() {
        let r = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let u = unreported(&r, 9);
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens),
            (prompt_tokens(&r), 3)
        );
    }
}
