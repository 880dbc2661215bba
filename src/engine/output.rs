//! An answer checked against the strict JSON schema its request asked for
//! (`ChatRequest::output_schema`): an answer off the schema is an `invalid_output` failure,
//! never a success. Tool calls are not checked (the schema is the text answer's).

use crate::resilience::{ErrorClass, UpstreamError};
use crate::schema::validate;
use serde_json::Value;

/// The failure of a complete pivot answer (an OpenAI chat completion) that is off `schema`.
pub(super) fn completion_off_schema(schema: &Value, body: &[u8]) -> Option<UpstreamError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Some(invalid("the answer is not JSON"));
    };
    let message = v.pointer("/choices/0/message");
    if message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        return None;
    }
    match message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
    {
        Some(text) => text_off_schema(schema, text),
        None => Some(invalid(
            "the answer has no text to check against the schema",
        )),
    }
}

/// The failure of an answer's text that is off `schema`.
pub(super) fn text_off_schema(schema: &Value, text: &str) -> Option<UpstreamError> {
    let answer: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(invalid(&format!("the answer is not JSON ({e})"))),
    };
    validate(schema, &answer)
        .err()
        .map(|violation| invalid(&format!("the answer breaks the schema at {violation}")))
}

fn invalid(why: &str) -> UpstreamError {
    UpstreamError::new(
        ErrorClass::InvalidOutput,
        format!("{why}; the request asked for a strict JSON schema"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(content: Value, tool_calls: Option<Value>) -> Vec<u8> {
        let mut message = json!({"role": "assistant", "content": content});
        if let Some(c) = tool_calls {
            message["tool_calls"] = c;
        }
        json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_first_violation_is_named_and_tool_calls_pass() {
        let schema = json!({"type": "object", "required": ["rating"],
                            "properties": {"rating": {"type": "number"}}});
        assert!(
            completion_off_schema(&schema, &completion(json!("{\"rating\":4.5}"), None)).is_none()
        );
        let e = completion_off_schema(&schema, &completion(json!("{\"rating\":\"4.5\"}"), None))
            .expect("invalid");
        assert_eq!(e.class, ErrorClass::InvalidOutput);
        assert!(
            e.message
                .contains("/rating: a string is not of type number"),
            "{}",
            e.message
        );
        let e = completion_off_schema(&schema, &completion(json!("Sure! Here it is"), None))
            .expect("invalid");
        assert!(
            e.message.starts_with("the answer is not JSON"),
            "{}",
            e.message
        );
        let calls =
            json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        assert!(completion_off_schema(&schema, &completion(Value::Null, Some(calls))).is_none());
    }
}
