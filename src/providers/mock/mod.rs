//! The built-in mock provider: answers in OpenAI's wire format with no network, so the gateway
//! works out of the box. Its output depends only on the request, the deployment and the
//! configured behaviour (fail with a status, latency, delay between stream chunks).

pub mod embeddings;

use crate::api::chat::last_user_text;
use crate::api::ChatRequest;
use crate::config::{Deployment, MockProvider};
use crate::hash::fnv1a;
use crate::sse::{encode_data, DONE};
use serde_json::json;

/// A mock answer, ready for the engine to play back with its delays.
#[derive(Debug, Clone)]
pub struct MockPlan {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Body pieces; for streams one SSE event each.
    pub chunks: Vec<Vec<u8>>,
    /// Delay before the response headers.
    pub latency_ms: u64,
    /// Delay before each stream chunk after the first.
    pub chunk_delay_ms: u64,
}

/// The mock's answer to `req`, as of `now_ms` (its `created`, and part of its id).
pub fn plan(m: &MockProvider, dep: &Deployment, req: &ChatRequest, now_ms: u64) -> MockPlan {
    let mut plan = MockPlan {
        status: 200,
        headers: Vec::new(),
        chunks: Vec::new(),
        latency_ms: m.latency_ms,
        chunk_delay_ms: 0,
    };
    if let Some(status) = m.fail_status {
        plan.status = status;
        if let Some(s) = m.retry_after_s {
            plan.headers.push(("retry-after".into(), s.to_string()));
        }
        let body = json!({"error": {
            "message": format!("mock deployment {} is configured to fail with HTTP {status}", dep.name),
            "type": if status >= 500 { "server_error" } else { "invalid_request_error" },
            "param": null, "code": "mock_failure"}});
        plan.headers
            .push(("content-type".into(), "application/json".into()));
        plan.chunks.push(body.to_string().into_bytes());
        return plan;
    }
    let echo: String = last_user_text(&req.body).chars().take(200).collect();
    let text = format!(
        "This is a mock answer from {}. You said: \"{}\"",
        dep.model, echo
    );
    // A trailing assistant message is a prefill: continue the answer after it, as models do.
    let prefill = trailing_assistant_text(&req.body);
    let text = match &prefill {
        Some(p) if text.starts_with(p.as_str()) => text.get(p.len()..).unwrap_or("").to_string(),
        _ => text,
    };
    let words: Vec<String> = split_words(&text);
    let prompt_tokens = crate::usage::estimate::prompt_tokens(req);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": words.len(),
        "total_tokens": prompt_tokens + words.len() as u64});
    // Unique per answer as a real provider's are: the text and the attempt's time (an
    // identical request in the same millisecond is the only repeat).
    let mut seed = text.clone().into_bytes();
    seed.extend_from_slice(&now_ms.to_le_bytes());
    seed.extend_from_slice(dep.name.as_bytes());
    let id = format!("chatcmpl-mock-{:016x}", fnv1a(&seed));
    let created = now_ms / 1000;
    if !req.stream {
        plan.headers
            .push(("content-type".into(), "application/json".into()));
        let body = json!({"id": id, "object": "chat.completion", "created": created, "model": dep.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage});
        plan.chunks.push(body.to_string().into_bytes());
        return plan;
    }
    plan.headers
        .push(("content-type".into(), "text/event-stream".into()));
    plan.chunk_delay_ms = m.chunk_delay_ms;
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        encode_data(
            &json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": dep.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
            .to_string(),
        )
    };
    plan.chunks.push(chunk(
        json!({"role": "assistant", "content": ""}),
        json!(null),
    ));
    let cut = m
        .cut_after_chunks
        .filter(|_| prefill.is_none())
        .map(|n| n as usize);
    for (i, w) in words.iter().enumerate() {
        if cut == Some(i) {
            return plan; // the connection ends mid-answer: no finish, no [DONE]
        }
        plan.chunks.push(chunk(json!({"content": w}), json!(null)));
    }
    plan.chunks.push(chunk(json!({}), json!("stop")));
    plan.chunks.push(encode_data(
        &json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": dep.model, "choices": [], "usage": usage}).to_string(),
    ));
    plan.chunks.push(DONE.to_vec());
    plan
}

fn trailing_assistant_text(body: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let last = body.get("messages")?.as_array()?.last()?;
    if last.get("role")?.as_str()? != "assistant" {
        return None;
    }
    last.get("content")?.as_str().map(str::to_string)
}

/// Splits text into words that keep their leading space, so concatenation restores it.
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        out.push(if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_table, ProviderKind};

    #[test]
    fn an_answer_carries_its_time_and_an_id_of_its_own() {
        let table = parse_table(
            r#"{"version":1,"providers":{"m":{"kind":"mock"}},
                "deployments":{"d":{"provider":"m","model":"mock-1","context_window":1000}},
                "routes":{"r":{"chain":["d"]}}}"#,
        )
        .unwrap();
        let dep = &table.deployments[0];
        let Some(ProviderKind::Mock(m)) = table.provider_of(dep).map(|p| &p.kind) else {
            panic!("mock provider");
        };
        let req = crate::api::parse_chat_request(
            br#"{"model":"r","messages":[{"role":"user","content":"ping"}]}"#,
        )
        .unwrap();
        let answer = |now_ms| -> serde_json::Value {
            serde_json::from_slice(&plan(m, dep, &req, now_ms).chunks[0]).unwrap()
        };
        let (a, b) = (answer(1_796_000_000_000), answer(1_796_000_000_001));
        assert_eq!(
            a["created"], 1_796_000_000,
            "seconds since the epoch, as OpenAI's"
        );
        assert_ne!(a["id"], b["id"], "two answers, two ids");
        assert_eq!(
            a["choices"], b["choices"],
            "the same text for the same prompt"
        );
    }
}
