//! What a pivot chunk says of choice 0, read once where the chunk is made: the engine records
//! what the client was sent (`engine::resume::Delivered`) from these facts instead of parsing
//! every forwarded chunk a second time.

use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkFacts {
    /// The chunk's `id`, `model` and `created` (a translator may leave them out once a chunk
    /// of its stream named an id: only the first named one is kept).
    pub id: Option<String>,
    pub model: Option<String>,
    pub created: Option<Value>,
    /// The chunk has more choices than choice 0, or its first choice is not choice 0.
    pub other_choice: bool,
    /// Choice 0's delta text.
    pub text: Option<String>,
    /// Choice 0's delta carries a tool call.
    pub tool_call: bool,
    /// Choice 0's delta carries reasoning or a refusal.
    pub other_content: bool,
    /// Choice 0's finish reason ("" when it is not a string).
    pub finish_reason: Option<String>,
}
