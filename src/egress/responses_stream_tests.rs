use super::*;
use crate::resilience::ErrorClass;
use crate::sse::encode_data;

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    encode_data(
        &json!({"id": "chatcmpl-s1", "created": 1700000001, "model": "m-up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string(),
    )
}

fn usage_chunk() -> Vec<u8> {
    encode_data(
        &json!({"id": "chatcmpl-s1", "choices": [], "usage": {"prompt_tokens": 5,
        "completion_tokens": 3, "total_tokens": 8, "prompt_tokens_details": {"cached_tokens": 2}}})
        .to_string(),
    )
}

/// (event name, data) of each event; the name must equal the data's `type`, and sequence
/// numbers count from 0 without gaps.
fn events(out: &[Vec<u8>]) -> Vec<(String, Value)> {
    let all: Vec<(String, Value)> = out
        .iter()
        .map(|b| {
            let s = String::from_utf8(b.clone()).unwrap();
            assert!(s.ends_with("\n\n"), "{s}");
            let mut lines = s.lines();
            let kind = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            (kind, serde_json::from_str(data).unwrap())
        })
        .collect();
    for (i, (kind, data)) in all.iter().enumerate() {
        assert_eq!(data["type"], kind.as_str());
        assert_eq!(data["sequence_number"], i as u64, "{kind}");
    }
    all
}

fn kinds(ev: &[(String, Value)]) -> Vec<&str> {
    ev.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn text_stream_is_the_typed_event_sequence() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.chunk(
        &chunk(json!({"role": "assistant", "content": ""}), None),
        &mut out,
    );
    enc.chunk(&chunk(json!({"content": "Hel"}), None), &mut out);
    enc.chunk(&chunk(json!({"content": "lo."}), None), &mut out);
    enc.chunk(&chunk(json!({}), Some("stop")), &mut out);
    enc.chunk(&usage_chunk(), &mut out);
    enc.done(&mut out);
    enc.done(&mut out);
    let ev = events(&out);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let created = &ev[0].1["response"];
    assert_eq!(created["id"], "resp_s1");
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["created_at"], 1700000001);
    assert_eq!(created["output"], json!([]));
    assert_eq!(ev[2].1["item"]["id"], "msg_s1");
    assert_eq!(ev[2].1["item"]["status"], "in_progress");
    assert_eq!(ev[4].1["delta"], "Hel");
    assert_eq!(
        (
            ev[4].1["output_index"].clone(),
            ev[4].1["content_index"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(ev[6].1["text"], "Hello.");
    assert_eq!(ev[7].1["part"]["text"], "Hello.");
    assert_eq!(ev[8].1["item"]["status"], "completed");
    let done = &ev[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello.");
    assert_eq!(done["output_text"], "Hello.");
    assert_eq!(done["usage"]["input_tokens"], 5);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 2);
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["usage"]["total_tokens"], 8);
}

#[test]
fn text_then_tool_calls() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.chunk(&chunk(json!({"content": "Checking."}), None), &mut out);
    enc.chunk(&chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}), None), &mut out);
    enc.chunk(
        &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            None,
        ),
        &mut out,
    );
    enc.chunk(
        &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            None,
        ),
        &mut out,
    );
    enc.chunk(&chunk(json!({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}]}), None), &mut out);
    enc.chunk(&chunk(json!({}), Some("tool_calls")), &mut out);
    enc.done(&mut out);
    let ev = events(&out);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(
        ev[8].1["item"],
        json!({"id": "fc_call_1", "type": "function_call", "status": "in_progress", "call_id": "call_1", "name": "f", "arguments": ""})
    );
    assert_eq!(ev[8].1["output_index"], 1);
    assert_eq!(ev[9].1["item_id"], "fc_call_1");
    assert_eq!(ev[11].1["arguments"], "{\"a\":1}");
    assert_eq!(ev[11].1["name"], "f");
    assert_eq!(ev[13].1["output_index"], 2);
    let done = &ev[17].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"].as_array().unwrap().len(), 3);
    assert_eq!(done["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(done["output"][2]["call_id"], "call_2");
    assert_eq!(done["usage"], Value::Null, "no usage chunk came");
}

#[test]
fn a_length_stop_ends_incomplete_not_completed() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.chunk(&chunk(json!({"content": "Once upon"}), None), &mut out);
    enc.chunk(&chunk(json!({}), Some("length")), &mut out);
    enc.done(&mut out);
    let ev = events(&out);
    let (last, data) = ev.last().unwrap();
    assert_eq!(last, "response.incomplete");
    assert_eq!(data["response"]["status"], "incomplete");
    assert_eq!(
        data["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(data["response"]["output"][0]["status"], "incomplete");
    assert!(!kinds(&ev).contains(&"response.completed"));
}

#[test]
fn a_break_ends_with_response_failed_then_error_and_nothing_after() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.chunk(&chunk(json!({"content": "Half an ans"}), None), &mut out);
    let resumed = enc.clone();
    enc.error(
        &UpstreamError::new(ErrorClass::StreamCut, "cut"),
        "connection broke mid-stream (the answer above is incomplete)",
        &mut out,
    );
    enc.done(&mut out);
    enc.chunk(&chunk(json!({"content": "wer"}), None), &mut out);
    let ev = events(&out);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
            "error"
        ]
    );
    let failed = &ev[5].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("incomplete"));
    assert_eq!(failed["output"][0]["status"], "incomplete");
    assert_eq!(failed["output"][0]["content"][0]["text"], "Half an ans");
    let error = &ev[6].1;
    assert_eq!(error["code"], "stream_cut");
    assert_eq!(error["param"], Value::Null);
    assert_eq!(error["error"]["code"], "stream_cut");
    assert_eq!(error["error"]["type"], "upstream_error");

    // A resumed attempt continues the same response: same item, next sequence numbers.
    let mut enc = resumed;
    let mut out2 = Vec::new();
    enc.chunk(&chunk(json!({"content": "wer."}), Some("stop")), &mut out2);
    enc.done(&mut out2);
    let first = String::from_utf8(out2[0].clone()).unwrap();
    assert!(
        first.starts_with("event: response.output_text.delta"),
        "{first}"
    );
    assert!(first.contains("\"sequence_number\":5"), "{first}");
    let last = String::from_utf8(out2.last().unwrap().clone()).unwrap();
    assert!(last.contains("\"text\":\"Half an answer.\""), "{last}");
}

#[test]
fn an_error_before_any_chunk_still_opens_the_response() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.error(
        &UpstreamError::new(ErrorClass::TimeoutIdle, "stall"),
        "stalled",
        &mut out,
    );
    let ev = events(&out);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.failed",
            "error"
        ]
    );
    assert_eq!(ev[3].1["code"], "timeout_idle");
}

#[test]
fn a_refusal_streams_as_a_refusal_part() {
    let mut enc = ResponsesStreamEncoder::default();
    let mut out = Vec::new();
    enc.chunk(&chunk(json!({"refusal": "I can't"}), None), &mut out);
    enc.chunk(&chunk(json!({"refusal": " help."}), None), &mut out);
    enc.chunk(&chunk(json!({}), Some("stop")), &mut out);
    enc.done(&mut out);
    let ev = events(&out);
    assert_eq!(
        kinds(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.refusal.delta",
            "response.refusal.delta",
            "response.refusal.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(ev[3].1["part"], json!({"type": "refusal", "refusal": ""}));
    assert_eq!(ev[6].1["refusal"], "I can't help.");
    let done = &ev[9].1["response"];
    assert_eq!(
        done["output"][0]["content"][0],
        json!({"type": "refusal", "refusal": "I can't help."})
    );
    assert_eq!(done["output_text"], "");
}
