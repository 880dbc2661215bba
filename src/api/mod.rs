//! Client-facing wire types (OpenAI chat completions) and the gateway's own error bodies.

pub mod chat;
pub mod error;

pub use chat::{parse_chat_request, ChatRequest};
pub use error::ApiError;
