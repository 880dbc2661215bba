//! `POST /v1/embeddings` in the core: the answer's shape (`answer`), base64 vectors
//! (`base64`), each provider kind's upstream call (`target`) and the walk along an embeddings
//! route's chain (`walk`). Embeddings are never streamed, so they do not go through the chat
//! engine (whose commit point, resume and hedging are about streams); the walk reuses its
//! parts: the error classes and retry decision (`resilience`), the breaker gate through the
//! `Health` port, the subrequest budget, `Meta` for headers, log line and settlement.

pub mod answer;
pub mod base64;
pub mod door;
pub mod target;
pub mod walk;

/// Vectors an upstream returned, checked (one per input, each of the expected length).
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of the inputs as the provider counted them, or estimated (`estimated`).
    pub prompt_tokens: u64,
    /// The provider gave no count (Gemini): `prompt_tokens` is `usage::estimate`'s.
    pub estimated: bool,
    /// The model that answered, as the upstream named it.
    pub model: Option<String>,
}
