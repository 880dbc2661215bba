//! OpenAI-compatible upstreams (OpenAI, DeepSeek, Groq, Mistral, OpenRouter, Together, vLLM…).

mod errors;
mod request;
mod response;
mod shape;
mod stream;

pub use errors::classify_error;
pub use request::build_request;
pub use response::parse_response;
pub use stream::StreamTranslator;
pub mod embeddings;
