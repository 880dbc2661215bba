//! Client-facing wire types (OpenAI chat completions) and the gateway's own error bodies.

pub mod anthropic;
pub mod chat;
pub mod error;
mod fields;

pub use chat::{parse_chat_request, ChatRequest, ClientFormat};
pub use error::ApiError;
