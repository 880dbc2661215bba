//! Egress: turns pivot-format answers (OpenAI chat completions) into the client's format.
//! OpenAI clients get the pivot bytes untouched; Anthropic clients get Messages-API bodies
//! and stream events.

mod anthropic_message;
mod anthropic_stream;

pub use anthropic_message::completion_to_message;
pub use anthropic_stream::AnthropicStreamEncoder;

use crate::api::{anthropic, ApiError, ClientFormat};
use crate::resilience::UpstreamError;
use crate::sse::{encode_data, DONE};
use serde_json::json;

/// Encodes one client stream from pivot chunks.
pub enum StreamEgress {
    OpenAi,
    Anthropic(Box<AnthropicStreamEncoder>),
}

impl StreamEgress {
    pub fn new(client: ClientFormat) -> Self {
        match client {
            ClientFormat::OpenAi => StreamEgress::OpenAi,
            ClientFormat::Anthropic => StreamEgress::Anthropic(Box::default()),
        }
    }

    /// One pivot chunk (`data: {chat.completion.chunk}\n\n`) from the upstream translator.
    pub fn chunk(&mut self, bytes: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        match self {
            StreamEgress::OpenAi => out.push(bytes),
            StreamEgress::Anthropic(enc) => enc.chunk(&bytes, out),
        }
    }

    /// The answer is complete.
    pub fn done(&mut self, out: &mut Vec<Vec<u8>>) {
        match self {
            StreamEgress::OpenAi => out.push(DONE.to_vec()),
            StreamEgress::Anthropic(enc) => enc.done(out),
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
        }
    }
}

/// A complete (non-streamed) pivot answer in the client's format.
pub fn completion_for_client(client: ClientFormat, body: Vec<u8>) -> Vec<u8> {
    match client {
        ClientFormat::OpenAi => body,
        ClientFormat::Anthropic => completion_to_message(&body),
    }
}

/// The gateway's error body in the client's format.
pub fn error_for_client(client: ClientFormat, e: &ApiError) -> Vec<u8> {
    match client {
        ClientFormat::OpenAi => e.to_body(),
        ClientFormat::Anthropic => anthropic::error_body(e),
    }
}
