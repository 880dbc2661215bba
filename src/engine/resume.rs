//! Mid-stream resume: what the client already has, and how a resumed upstream stream is
//! filtered so the client sees one seamless answer.
//!
//! State: `Delivered` accumulates the text of choice 0 that went to the client (at most
//! `MAX_DELIVERED_BYTES`: past it the text is let go and the stream cannot be resumed, since
//! a resume needs all of it), and whether a tool call is half-sent. A `Filter` sits between
//! a resumed attempt's pivot chunks and the client: `Prefill` streams the continuation
//! (dropping the role chunk and whitespace the prefill had to trim); `Replay` swallows output
//! while it reproduces the delivered text exactly, then streams only what is new. Invariant:
//! nothing that repeats or contradicts the delivered text is ever forwarded; a divergent
//! replay is an error, not output. After a resume every chunk is rewritten to carry the first
//! attempt's `id` and `model`, and usage chunks include the tokens of the attempts before.

use crate::providers::ChunkFacts;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::sse::encode_data;
use crate::usage::Usage;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Most text kept for a resume (≈ 250k tokens, past any model's output limit today): an
/// upstream that streams without end cannot make a stream hold more.
pub const MAX_DELIVERED_BYTES: usize = 1 << 20;

/// What went to the client so far (choice 0).
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The text delivered, while it is at most `MAX_DELIVERED_BYTES` (then empty, see
    /// `overflowed`). Read it with `text()`.
    text: String,
    /// Characters delivered in all, kept or not (usage estimates of broken streams).
    pub chars: usize,
    /// More than `MAX_DELIVERED_BYTES` was delivered: the text was let go, no resume.
    pub overflowed: bool,
    /// A tool call was started and not finished: tool arguments cannot be stitched by prefill.
    pub tool_partial: bool,
    pub id: Option<String>,
    pub model: Option<String>,
    pub created: Option<Value>,
    /// Choice 0's finish reason, once a chunk gave one.
    pub finish_reason: Option<String>,
    /// The answer was more than choice 0's text: another choice, a tool call, reasoning or a
    /// refusal was delivered too (so its text alone does not reproduce it, e.g. for the
    /// response cache).
    pub not_text_only: bool,
}

impl Delivered {
    /// The delivered text (empty once it `overflowed`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A resume may continue after this: all the text is kept and no tool call is half-sent.
    pub fn resumable(&self) -> bool {
        !self.overflowed && !self.tool_partial
    }

    fn push_text(&mut self, t: &str) {
        self.chars += t.chars().count();
        if self.overflowed {
            return;
        }
        if self.text.len() + t.len() > MAX_DELIVERED_BYTES {
            self.overflowed = true;
            self.text = String::new();
        } else {
            self.text.push_str(t);
        }
    }

    /// Records one pivot chunk (`data: {...}\n\n`) that was forwarded to the client.
    pub fn observe(&mut self, chunk: &[u8]) {
        let Some(data) = chunk_data(chunk) else {
            return;
        };
        // Read only the fields needed, without a JSON tree. A chunk of another shape (never
        // one of ours) takes the general path.
        let facts = match serde_json::from_str::<Seen>(data) {
            Ok(seen) => facts_of_seen(seen),
            Err(_) => match serde_json::from_str::<Value>(data) {
                Ok(v) => facts_of_value(&v),
                Err(_) => return,
            },
        };
        self.record(facts);
    }

    /// Records what a forwarded chunk said of choice 0 (read by `observe`, or by the
    /// translator that made the chunk).
    pub fn record(&mut self, f: ChunkFacts) {
        if self.id.is_none() {
            self.id = f.id;
            self.model = f.model;
            self.created = f.created;
        }
        if f.other_choice {
            self.not_text_only = true;
        }
        if let Some(t) = &f.text {
            self.push_text(t);
        }
        if f.tool_call {
            self.tool_partial = true;
            self.not_text_only = true;
        }
        if f.other_content {
            self.not_text_only = true;
        }
        if let Some(reason) = f.finish_reason {
            self.tool_partial = false;
            self.finish_reason = Some(reason);
        }
    }
}

fn facts_of_seen(seen: Seen<'_>) -> ChunkFacts {
    let mut f = ChunkFacts {
        id: seen.id.map(Cow::into_owned),
        model: seen.model.map(Cow::into_owned),
        created: seen.created,
        ..ChunkFacts::default()
    };
    let Some(choices) = seen.choices.as_ref() else {
        return f;
    };
    let Some(c) = choices.first() else { return f };
    f.other_choice = choices.len() > 1 || c.index.is_some_and(|i| i != 0);
    if let Some(delta) = &c.delta {
        f.text = delta.content.as_deref().map(str::to_string);
        f.tool_call = delta.tool_calls.is_some();
        f.other_content = delta.reasoning_content.is_some() || delta.refusal.is_some();
    }
    f.finish_reason = c.finish_reason.as_deref().map(str::to_string);
    f
}

fn facts_of_value(v: &Value) -> ChunkFacts {
    let mut f = ChunkFacts {
        id: v.get("id").and_then(Value::as_str).map(str::to_string),
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        created: v.get("created").cloned(),
        ..ChunkFacts::default()
    };
    let Some(c) = first_choice(v) else { return f };
    let more_choices = v
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|c| c.len() > 1);
    f.other_choice = more_choices
        || c.get("index")
            .and_then(Value::as_u64)
            .is_some_and(|i| i != 0);
    let delta = c.get("delta");
    f.text = delta
        .and_then(|d| d.get("content"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let delta_has = |k: &str| delta.and_then(|d| d.get(k)).is_some_and(|t| !t.is_null());
    f.tool_call = delta_has("tool_calls");
    f.other_content = delta_has("reasoning_content") || delta_has("refusal");
    f.finish_reason = c
        .get("finish_reason")
        .filter(|f| !f.is_null())
        .map(|f| f.as_str().unwrap_or_default().to_string());
    f
}

/// What `Delivered::observe` reads of a pivot chunk (`null` reads as absent, as in the tree).
#[derive(Deserialize)]
struct Seen<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    created: Option<Value>,
    #[serde(borrow)]
    choices: Option<Vec<SeenChoice<'a>>>,
}

#[derive(Deserialize)]
struct SeenChoice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<SeenDelta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct SeenDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    tool_calls: Option<IgnoredAny>,
    reasoning_content: Option<IgnoredAny>,
    refusal: Option<IgnoredAny>,
}

/// How a resumed attempt continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Prefill,
    Replay,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Prefill => "prefill",
            Method::Replay => "replay",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub enum Filter {
    /// The first attempt: chunks go through untouched.
    #[default]
    Pass,
    Prefill {
        /// Whitespace trimmed from the end of the prefill, dropped from the continuation's start.
        strip_leading_ws: bool,
        prior: Usage,
    },
    Replay {
        expected: String,
        cursor: usize,
        prior: Usage,
    },
}

impl Filter {
    pub fn prefill(delivered: &Delivered, prior: Usage) -> Self {
        let trimmed = delivered.text.trim_end().len();
        Filter::Prefill {
            strip_leading_ws: trimmed < delivered.text.len(),
            prior,
        }
    }

    pub fn replay(delivered: &Delivered, prior: Usage) -> Self {
        Filter::Replay {
            expected: delivered.text.clone(),
            cursor: 0,
            prior,
        }
    }

    /// One pivot chunk from the attempt → what to forward (None: nothing), or the divergence.
    pub fn apply(
        &mut self,
        chunk: Vec<u8>,
        d: &Delivered,
    ) -> Result<Option<Vec<u8>>, UpstreamError> {
        let (prior, strip) = match self {
            Filter::Pass => return Ok(Some(chunk)),
            Filter::Prefill {
                prior,
                strip_leading_ws,
            } => (*prior, strip_leading_ws),
            Filter::Replay { prior, .. } => (*prior, &mut false),
        };
        let Some(mut v) = parse_chunk(&chunk) else {
            return Ok(None);
        };
        let usage_only = v
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if usage_only {
            add_prior_usage(&mut v, prior);
            return Ok(Some(rewrite(v, d)));
        }
        let Some(choice) = first_choice(&v) else {
            return Ok(None);
        };
        let finish = choice.get("finish_reason").is_some_and(|f| !f.is_null());
        let text = choice
            .get("delta")
            .and_then(|x| x.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let has_tools = choice
            .get("delta")
            .and_then(|x| x.get("tool_calls"))
            .is_some_and(|t| !t.is_null());
        let mut text = text;
        if *strip && !text.is_empty() {
            text = text.trim_start().to_string();
            *strip = text.is_empty();
        }
        if let Filter::Replay {
            expected, cursor, ..
        } = self
        {
            if *cursor < expected.len() {
                let rest = expected.get(*cursor..).unwrap_or("");
                if rest.starts_with(text.as_str()) {
                    *cursor += text.len();
                    if finish || has_tools {
                        return Err(diverged(&format!(
                            "{DIVERGED} ended or called a tool before reaching the delivered text"
                        )));
                    }
                    return Ok(None);
                }
                if let Some(new) = text.strip_prefix(rest) {
                    *cursor = expected.len();
                    text = new.to_string();
                } else {
                    return Err(diverged(&format!(
                        "{DIVERGED} differs from the text already delivered"
                    )));
                }
            }
        }
        if text.is_empty() && !finish && !has_tools {
            return Ok(None); // role chunks and emptied deltas
        }
        set_content(&mut v, &text);
        Ok(Some(rewrite(v, d)))
    }

    /// The replay has reproduced everything delivered (or this is not a replay).
    pub fn caught_up(&self) -> bool {
        match self {
            Filter::Replay {
                expected, cursor, ..
            } => *cursor >= expected.len(),
            _ => true,
        }
    }
}

/// Every divergence message starts with this.
pub const DIVERGED: &str = "the replayed answer";

/// A divergence: malformed for the breaker, and flagged so that resuming stops on it.
fn diverged(msg: &str) -> UpstreamError {
    UpstreamError {
        diverged: true,
        ..UpstreamError::new(ErrorClass::MalformedResponse, msg)
    }
}

fn parse_chunk(chunk: &[u8]) -> Option<Value> {
    serde_json::from_str(chunk_data(chunk)?).ok()
}

/// The JSON of one `data: {...}\n\n` chunk.
fn chunk_data(chunk: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(chunk).ok()?;
    Some(text.trim().strip_prefix("data:")?.trim())
}

fn first_choice(v: &Value) -> Option<&Value> {
    v.get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
}

fn set_content(v: &mut Value, text: &str) {
    let delta = v
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .and_then(|c| c.first_mut())
        .and_then(|c| c.get_mut("delta"))
        .and_then(Value::as_object_mut);
    if let Some(delta) = delta {
        delta.remove("role");
        if text.is_empty() {
            delta.remove("content");
        } else {
            delta.insert("content".into(), Value::String(text.to_string()));
        }
    }
}

fn add_prior_usage(v: &mut Value, prior: Usage) {
    let Some(u) = v.get_mut("usage").and_then(Value::as_object_mut) else {
        return;
    };
    let add = |u: &mut Map<String, Value>, k: &str, n: u64| {
        let cur = u.get(k).and_then(Value::as_u64).unwrap_or(0);
        u.insert(k.into(), Value::from(cur + n));
    };
    add(u, "prompt_tokens", prior.prompt_tokens);
    add(u, "completion_tokens", prior.completion_tokens);
    add(
        u,
        "total_tokens",
        prior.prompt_tokens + prior.completion_tokens,
    );
}

/// The chunk with the first attempt's id, model and created time.
fn rewrite(mut v: Value, d: &Delivered) -> Vec<u8> {
    if let Some(o) = v.as_object_mut() {
        if let Some(id) = &d.id {
            o.insert("id".into(), Value::String(id.clone()));
        }
        if let Some(m) = &d.model {
            o.insert("model".into(), Value::String(m.clone()));
        }
        if let Some(c) = &d.created {
            o.insert("created".into(), c.clone());
        }
    }
    encode_data(&v.to_string())
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
