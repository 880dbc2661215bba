//! Egress: turns pivot-format answers (OpenAI chat completions) into the client's format.
//! OpenAI clients get the pivot bytes untouched; Anthropic clients get Messages-API bodies
//! and stream events; Responses API clients get `response` objects and typed stream events.

mod anthropic_message;
mod anthropic_stream;
mod pivot_chunk;
mod responses_body;
mod responses_object;
mod responses_stream;

pub use anthropic_message::completion_to_message;
pub use anthropic_stream::AnthropicStreamEncoder;
pub use responses_body::completion_to_response;
pub use responses_stream::ResponsesStreamEncoder;

use crate::api::error::ErrorKind;
use crate::api::{anthropic, ApiError, ClientFormat};
use crate::resilience::UpstreamError;
use crate::sse::{encode_data, DONE};
use serde_json::json;

/// Encodes one client stream from pivot chunks.
#[derive(Clone)]
pub enum StreamEgress {
    OpenAi,
    Anthropic(Box<AnthropicStreamEncoder>),
    Responses(Box<ResponsesStreamEncoder>),
    /// An Anthropic client served by an Anthropic upstream: the upstream's own events pass
    /// through (thinking signatures and all); pivot chunks are ignored.
    AnthropicNative {
        saw_stop: bool,
        ended: bool,
    },
}

impl StreamEgress {
    /// `native`: the upstream speaks the client's format and its translator emits native events.
    pub fn new(client: ClientFormat, native: bool) -> Self {
        match (client, native) {
            (ClientFormat::OpenAi, _) => StreamEgress::OpenAi,
            (ClientFormat::Anthropic, false) => StreamEgress::Anthropic(Box::default()),
            (ClientFormat::Anthropic, true) => StreamEgress::AnthropicNative {
                saw_stop: false,
                ended: false,
            },
            (ClientFormat::Responses, _) => StreamEgress::Responses(Box::default()),
        }
    }

    /// One upstream event in its own format (native mode only).
    pub fn native(&mut self, bytes: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        if let StreamEgress::AnthropicNative {
            saw_stop,
            ended: false,
        } = self
        {
            *saw_stop |= bytes.starts_with(b"event: message_stop");
            out.push(bytes);
        }
    }

    /// One pivot chunk (`data: {chat.completion.chunk}\n\n`) from the upstream translator.
    pub fn chunk(&mut self, bytes: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        match self {
            StreamEgress::OpenAi => out.push(bytes),
            StreamEgress::Anthropic(enc) => enc.chunk(&bytes, out),
            StreamEgress::Responses(enc) => enc.chunk(&bytes, out),
            StreamEgress::AnthropicNative { .. } => {}
        }
    }

    /// The answer is complete.
    pub fn done(&mut self, out: &mut Vec<Vec<u8>>) {
        match self {
            StreamEgress::OpenAi => out.push(DONE.to_vec()),
            StreamEgress::Anthropic(enc) => enc.done(out),
            StreamEgress::Responses(enc) => enc.done(out),
            StreamEgress::AnthropicNative { saw_stop, ended } => {
                if !*saw_stop && !*ended {
                    out.push(
                        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_vec(),
                    );
                }
                *ended = true;
            }
        }
    }

    /// The gateway cut the answer at the `cap` output tokens the caller's key reserved: one
    /// in-band `budget_exceeded` error event, and never the normal end.
    pub fn budget_cut(&mut self, cap: u64, out: &mut Vec<Vec<u8>>) {
        let message = budget_cut_message(cap);
        match self {
            StreamEgress::OpenAi => {
                let body = json!({"error": {"message": message, "type": "insufficient_quota", "code": "budget_exceeded", "param": null}});
                out.push(encode_data(&body.to_string()));
            }
            StreamEgress::Anthropic(enc) => {
                enc.gateway_error(ErrorKind::RateLimited, &message, out)
            }
            StreamEgress::Responses(enc) => enc.budget_cut(&message, out),
            StreamEgress::AnthropicNative { ended, .. } => {
                if !*ended {
                    *ended = true;
                    out.push(anthropic_stream::gateway_error_event(
                        ErrorKind::RateLimited,
                        &message,
                    ));
                }
            }
        }
    }

    /// The stream broke after it started: one in-band error event, and nothing after it.
    pub fn error(&mut self, e: &UpstreamError, out: &mut Vec<Vec<u8>>) {
        let message = format!("{} (the answer above is incomplete)", e.message);
        match self {
            StreamEgress::OpenAi => {
                let body = json!({"error": {"message": message, "type": "upstream_error", "code": e.class.as_str(), "param": null}});
                out.push(encode_data(&body.to_string()));
            }
            StreamEgress::Anthropic(enc) => enc.error(e, &message, out),
            StreamEgress::Responses(enc) => enc.error(e, &message, out),
            StreamEgress::AnthropicNative { ended, .. } => {
                if !*ended {
                    *ended = true;
                    out.push(anthropic_stream::error_event(e, &message));
                }
            }
        }
    }
}

/// What a stream cut at its output reservation says (`StreamEgress::budget_cut`).
pub fn budget_cut_message(cap: u64) -> String {
    format!(
        "The answer reached the {cap} output tokens reserved for it and was cut there: the \
         gateway key has a budget or token limit and the request set no max_tokens. Send \
         max_tokens, or raise defaults.estimated_output_tokens in the routing table."
    )
}

/// A complete (non-streamed) pivot answer in the client's format.
pub fn completion_for_client(client: ClientFormat, body: Vec<u8>) -> Vec<u8> {
    match client {
        ClientFormat::OpenAi => body,
        ClientFormat::Anthropic => completion_to_message(&body),
        ClientFormat::Responses => completion_to_response(&body),
    }
}

/// The gateway's error body in the client's format.
pub fn error_for_client(client: ClientFormat, e: &ApiError) -> Vec<u8> {
    match client {
        // The Responses API answers HTTP errors in OpenAI's `{"error": {…}}` shape.
        ClientFormat::OpenAi | ClientFormat::Responses => e.to_body(),
        ClientFormat::Anthropic => anthropic::error_body(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[Vec<u8>]) -> String {
        out.iter().map(|b| String::from_utf8_lossy(b)).collect()
    }

    #[test]
    fn a_budget_cut_is_an_error_event_in_every_client_format_and_never_the_end() {
        for (client, native) in [
            (ClientFormat::OpenAi, false),
            (ClientFormat::Anthropic, false),
            (ClientFormat::Anthropic, true),
            (ClientFormat::Responses, false),
        ] {
            let mut e = StreamEgress::new(client, native);
            let mut out = Vec::new();
            e.budget_cut(20, &mut out);
            let t = text(&out);
            assert!(t.contains("20 output tokens reserved"), "{t}");
            assert!(!t.contains("[DONE]") && !t.contains("message_stop"), "{t}");
            match client {
                ClientFormat::OpenAi => assert!(t.contains("\"code\":\"budget_exceeded\"")),
                ClientFormat::Anthropic => {
                    assert!(t.starts_with("event: error\n"), "{t}");
                    assert!(t.contains("\"type\":\"rate_limit_error\""), "{t}");
                }
                ClientFormat::Responses => {
                    assert!(t.contains("event: response.failed\n"), "{t}");
                    assert!(t.contains("event: error\n"), "{t}");
                    assert!(t.contains("\"code\":\"budget_exceeded\""), "{t}");
                    assert!(!t.contains("response.completed"), "{t}");
                }
            }
            // An Anthropic stream, once ended by it, never gets its message_stop.
            let mut after = Vec::new();
            e.done(&mut after);
            if client != ClientFormat::OpenAi {
                assert!(text(&after).is_empty(), "{}", text(&after));
            }
        }
    }
}
