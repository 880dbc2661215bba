//! Anthropic Messages upstreams (`POST /v1/messages`): requests translated from the OpenAI
//! pivot (or an Anthropic client's own body passed through), answers and streams translated
//! back into the pivot (OpenAI `chat.completion` / `chat.completion.chunk`).

mod errors;
mod messages;
mod request;
mod response;
mod stream;

pub use errors::classify_error;
pub use request::{build_count_tokens, build_request};
pub use response::parse_response;
pub use stream::StreamTranslator;
