//! Tests of the request translation (`request`, `contents`) against the fixtures.

use super::request::{build_request, translate_body};
use crate::api::{parse_chat_request, ChatRequest};
use crate::config::{Capabilities, Deployment, HttpProvider, Price, DEFAULT_TIMEOUTS};
use crate::providers::Secrets;
use crate::resilience::ErrorClass;
use serde_json::{json, Value};

const OPENAI_TOOLS_IMAGE: &str = include_str!("testdata/chat_completions_request_tools_image.json");
const GEMINI_REQUEST: &str = include_str!("testdata/generate_content_request.json");
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4//8/AAX+Av4zEpUUAAAAAElFTkSuQmCC";

struct Keys;
impl Secrets for Keys {
    fn get(&self, name: &str) -> Option<String> {
        (name == "GEMINI_KEY").then(|| "k-123".to_string())
    }
}

fn provider(secret: &str) -> HttpProvider {
    HttpProvider {
        base_url: "https://generativelanguage.googleapis.com/v1beta".into(),
        api_key_secret: Some(secret.into()),
        headers: vec![("x-extra".into(), "1".into())],
    }
}

fn deployment(model: &str) -> Deployment {
    Deployment {
        name: "gem".into(),
        provider: 0,
        model: model.into(),
        context_window: 1_000_000,
        price: Price::default(),
        timeouts: DEFAULT_TIMEOUTS,
        capabilities: Capabilities::default(),
        breaker: Default::default(),
        degradation: Default::default(),
        limits: Default::default(),
        tags: Vec::new(),
        embedding: None,
    }
}

fn chat(v: &Value) -> ChatRequest {
    parse_chat_request(v.to_string().as_bytes()).unwrap()
}

fn body_of(v: &Value) -> Value {
    translate_body(&chat(v).body).unwrap()
}

#[test]
fn openai_fixture_request() {
    let req: Value = serde_json::from_str(OPENAI_TOOLS_IMAGE).unwrap();
    let r = build_request(
        &provider("GEMINI_KEY"),
        &deployment("gemini-2.5-flash"),
        &chat(&req),
        &Keys,
    )
    .unwrap();
    assert_eq!(
        r.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    let header = |k: &str| {
        r.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("x-goog-api-key"), Some("k-123"));
    assert_eq!(header("x-extra"), Some("1"));
    assert_eq!(header("authorization"), None);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are a helpful assistant."}]})
    );
    let url = req["messages"][1]["content"][1]["image_url"]["url"].clone();
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [
            {"text": "What is in this image?"},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": url}}
        ]}])
    );
    let decl = &body["tools"][0]["functionDeclarations"][0];
    assert_eq!(decl["name"], "get_current_weather");
    assert_eq!(
        decl["parameters"],
        req["tools"][0]["function"]["parameters"]
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert!(body.get("generationConfig").is_none());

    // The same request with an inline image, sampling options and a named tool choice.
    let mut req = req;
    req["messages"][1]["content"][1]["image_url"]["url"] =
        json!(format!("data:image/png;base64,{PNG}"));
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_current_weather"}});
    req["tools"][0]["function"]["parameters"]["additionalProperties"] = json!(false);
    req["tools"][0]["function"]["parameters"]["$schema"] = json!("x");
    for (k, v) in [
        ("max_tokens", json!(300)),
        ("max_completion_tokens", json!(400)),
        ("temperature", json!(0.2)),
        ("top_p", json!(0.9)),
        ("stop", json!("END")),
        ("n", json!(2)),
        ("seed", json!(7)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-0.5)),
        ("response_format", json!({"type": "json_object"})),
        ("user", json!("dropped")),
        ("parallel_tool_calls", json!(false)),
        ("stream", json!(true)),
    ] {
        req[k] = v;
    }
    let r = build_request(
        &provider("GEMINI_KEY"),
        &deployment("models/gemini-2.5-flash"),
        &chat(&req),
        &Keys,
    )
    .unwrap();
    assert!(r
        .url
        .ends_with("/models/gemini-2.5-flash:streamGenerateContent?alt=sse"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": PNG}})
    );
    let params = &body["tools"][0]["functionDeclarations"][0]["parameters"];
    assert!(params.get("additionalProperties").is_none() && params.get("$schema").is_none());
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_current_weather"]}})
    );
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 400, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"],
               "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
               "responseMimeType": "application/json"})
    );
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "contents",
            "generationConfig",
            "systemInstruction",
            "toolConfig",
            "tools"
        ]
    );
}

#[test]
fn matches_the_gemini_request_fixture() {
    let expected: Value = serde_json::from_str(GEMINI_REQUEST).unwrap();
    let system = expected["systemInstruction"]["parts"][0]["text"].clone();
    let tools: Vec<Value> = expected["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut f = d.clone();
            if f.get("parameters").is_none() {
                // What OpenAI clients send for a function without arguments.
                f["parameters"] = json!({"type": "object", "properties": {}});
            }
            json!({"type": "function", "function": f})
        })
        .collect();
    let req = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": [
                {"type": "text", "text": "Turn on the lights please."},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
            ]}
        ],
        "tools": tools
    });
    assert_eq!(body_of(&req), expected);
}

#[test]
fn tool_round_trip() {
    let req = json!({"model": "m", "messages": [
        {"role": "user", "content": "Divide 100 by 2, and 9 by 3"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "customDivide", "arguments": "{\"numerator\":100,\"denominator\":2}"},
             "extra_content": {"google": {"thought_signature": "c2ln"}}},
            {"id": "call_b", "type": "function",
             "function": {"name": "otherDivide", "arguments": "{\"numerator\":9,\"denominator\":3}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_b", "content": "3"},
        {"role": "tool", "tool_call_id": "call_a", "content": "{\"result\":50}"},
        {"role": "assistant", "content": "50 and 3.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "log", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "ok"}]}
    ]});
    let body = body_of(&req);
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Divide 100 by 2, and 9 by 3"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "customDivide", "args": {"numerator": 100, "denominator": 2}},
                 "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "otherDivide", "args": {"numerator": 9, "denominator": 3}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "otherDivide", "response": {"content": "3"}}},
                {"functionResponse": {"name": "customDivide", "response": {"result": 50}}}
            ]},
            {"role": "model", "parts": [
                {"text": "50 and 3."},
                {"functionCall": {"name": "log", "args": {}},
                 "thoughtSignature": "skip_thought_signature_validator"}
            ]},
            // The id is reused: the nearest earlier assistant message names the tool.
            {"role": "user", "parts": [
                {"functionResponse": {"name": "log", "response": {"content": "ok"}}}
            ]}
        ])
    );
}

#[test]
fn refusals_and_errors() {
    let r = build_request(
        &provider("MISSING"),
        &deployment("g"),
        &chat(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})),
        &Keys,
    )
    .unwrap_err();
    assert_eq!(r.class, ErrorClass::AuthError);
    assert!(r.message.contains("\"MISSING\""), "{}", r.message);
    let bad = |messages: Value| {
        let req = chat(&json!({"model": "m", "messages": messages}));
        translate_body(&req.body).unwrap_err().class
    };
    assert_eq!(
        bad(json!([{"role": "tool", "tool_call_id": "nope", "content": "x"}])),
        ErrorClass::InvalidRequest
    );
    assert_eq!(
        bad(
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}])
        ),
        ErrorClass::InvalidRequest
    );
    assert_eq!(
        bad(json!([{"role": "assistant", "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}])),
        ErrorClass::InvalidRequest
    );
}

#[test]
fn options() {
    let base = |extra: Value| {
        let mut req = json!({"model": "m", "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "a"}]},
            {"role": "system", "content": "b"},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": ""},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://x.test/a.PNG?s=1"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
            ]}
        ], "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "g"}}
        ]});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        body_of(&req)
    };
    let b = base(json!({}));
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "a"}, {"text": "b"}]})
    );
    assert_eq!(
        b["contents"],
        json!([{"role": "user", "parts": [
            {"text": "hi"},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.PNG?s=1"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}
        ]}])
    );
    assert!(b.get("toolConfig").is_none());
    let mode = |choice: Value| {
        base(json!({"tool_choice": choice}))["toolConfig"]["functionCallingConfig"].clone()
    };
    assert_eq!(mode(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(mode(json!("required")), json!({"mode": "ANY"}));
    let allowed = json!({"type": "allowed_tools", "allowed_tools": {"mode": "required",
        "tools": [{"type": "function", "function": {"name": "g"}}]}});
    let b = base(json!({"tool_choice": allowed}));
    assert_eq!(
        b["tools"][0]["functionDeclarations"],
        json!([{"name": "g"}])
    );
    assert_eq!(
        b["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["g"]})
    );
    let schema = json!({"type": "object", "additionalProperties": false,
        "properties": {"x": {"type": "integer"}}, "required": ["x"]});
    let b = base(json!({"stop": ["a", "b"], "max_tokens": 5,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": true, "schema": schema}}}));
    assert_eq!(
        b["generationConfig"],
        json!({"stopSequences": ["a", "b"], "maxOutputTokens": 5,
               "responseMimeType": "application/json",
               "responseSchema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}})
    );
}

#[test]
fn model_is_one_path_segment() {
    let req = chat(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    let r = build_request(
        &provider("GEMINI_KEY"),
        &deployment("../x?y:z"),
        &req,
        &Keys,
    )
    .unwrap();
    assert!(
        r.url.ends_with("/models/..%2Fx%3Fy%3Az:generateContent"),
        "{}",
        r.url
    );
}
