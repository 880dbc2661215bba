//! Token estimates where no provider count exists yet (admission before a request is sent,
//! routing by prompt size, the mock's usage) or ever will (a stream cut before its usage
//! event): about 4 characters per token. The one place that ratio is written.
//!
//! A prompt's estimate counts everything providers bill as input: message text, tool
//! definitions, the arguments of earlier tool calls, and `IMAGE_TOKENS` per image. An answer's
//! limit counts once per choice (`n`).

use super::Usage;
use crate::api::ChatRequest;
use serde_json::Value;

/// Characters per token, the usual rough figure for English text.
const CHARS_PER_TOKEN: u64 = 4;

/// Tokens assumed per image in a prompt: Anthropic's figure for a full-size image (about
/// 1,600); OpenAI's high-detail 1024×1024 is 765 and Gemini's 258, so this errs high, as a
/// reservation should.
pub const IMAGE_TOKENS: u64 = 1_600;

/// Most choices (`n`) counted for one request (OpenAI's own limit is 128).
const MAX_CHOICES: u64 = 128;

/// Tokens in `chars` characters of text, rounded up (0 for no text).
pub fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(CHARS_PER_TOKEN)
}

/// The request's prompt tokens as billed: message text, tool definitions, earlier tool
/// calls' names and arguments, and images. At least 1, since every request has a prompt.
pub fn prompt_tokens(req: &ChatRequest) -> u64 {
    let tools = req.body.get("tools").map_or(0, json_chars);
    let mut calls = 0;
    let mut images = 0u64;
    let messages = req.body.get("messages").and_then(Value::as_array);
    for m in messages.into_iter().flatten() {
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let f = call.get("function");
            calls += ["name", "arguments"]
                .iter()
                .filter_map(|k| f.and_then(|f| f.get(*k)).and_then(Value::as_str))
                .map(|t| t.chars().count())
                .sum::<usize>();
        }
        let parts = m.get("content").and_then(Value::as_array);
        images += parts
            .into_iter()
            .flatten()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
            .count() as u64;
    }
    tokens(req.prompt_chars + tools + calls)
        .saturating_add(images.saturating_mul(IMAGE_TOKENS))
        .max(1)
}

/// Characters of a JSON value as sent.
fn json_chars(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |t| t.chars().count())
}

/// How many answers the request asks for (`n`, 1 when absent).
pub fn choices(req: &ChatRequest) -> u64 {
    req.body
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES)
}

/// The tokens a request may use at most: its prompt and its output limit
/// (`max_completion_tokens`, else `max_tokens`, or `default_output` when it sets none) for
/// each of its `n` answers.
pub fn at_most(req: &ChatRequest, default_output: u32) -> Usage {
    let output = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| req.body.get(*k).and_then(Value::as_u64))
        .unwrap_or(u64::from(default_output));
    Usage {
        prompt_tokens: prompt_tokens(req),
        completion_tokens: output.saturating_mul(choices(req)),
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
    fn tools_tool_calls_images_and_choices_count() {
        let plain = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let base = prompt_tokens(&plain);
        let tools = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather for a city, as a short sentence in English","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#);
        assert!(
            prompt_tokens(&tools) >= base + 30,
            "{}",
            prompt_tokens(&tools)
        );
        let call = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"query\":\"a long query of forty characters......\"}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"ok"}]}"#);
        assert!(
            prompt_tokens(&call) >= base + 12,
            "{}",
            prompt_tokens(&call)
        );
        let image = req(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},
                {"type":"image_url","image_url":{"url":"https://x/y.png"}},
                {"type":"image_url","image_url":{"url":"https://x/z.png"}}]}]}"#,
        );
        assert_eq!(prompt_tokens(&image), base + 2 * IMAGE_TOKENS);
        let n = req(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3,"max_tokens":10}"#,
        );
        assert_eq!(at_most(&n, 500).completion_tokens, 30);
        let n = req(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3}"#);
        assert_eq!(at_most(&n, 500).completion_tokens, 1_500);
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
