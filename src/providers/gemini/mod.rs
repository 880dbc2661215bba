//! Gemini API upstreams (generativelanguage v1beta): `models/{model}:generateContent` and
//! `models/{model}:streamGenerateContent?alt=sse`, key in `x-goog-api-key`. Requests are
//! translated from the OpenAI pivot (`request`, `contents`, `schema`), answers back into it
//! (`response`, `stream`), and `google.rpc.Status` errors into the taxonomy (`errors`).
//!
//! Not supported: Gemini-only features with no OpenAI field (safety settings, thinking
//! configuration, cached contents, built-in tools such as search or code execution),
//! logprobs, file references other than http(s)/data URLs, and audio or image output.

mod contents;
mod errors;
mod request;
mod response;
mod schema;
mod stream;

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod stream_tests;

pub use errors::classify_error;
pub use request::build_request;
pub use response::parse_response;
pub use stream::StreamTranslator;
pub mod embeddings;
