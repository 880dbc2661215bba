//! Tests of the request builder: the OpenAI fixture, parameters, tools, secrets, native bodies.

use super::*;
use crate::api::ClientFormat;
use crate::config::{Capabilities, HttpProvider, Price, DEFAULT_TIMEOUTS};
use crate::resilience::ErrorClass;

struct Keys;
impl Secrets for Keys {
    fn get(&self, name: &str) -> Option<String> {
        (name == "ANTHROPIC_KEY").then(|| "sk-ant-test".to_string())
    }
}

fn provider(secret: &str, headers: &[(&str, &str)]) -> AnthropicProvider {
    AnthropicProvider {
        http: HttpProvider {
            base_url: "https://api.anthropic.com/v1".into(),
            api_key_secret: Some(secret.into()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        version: "2023-06-01".into(),
        default_max_tokens: 4096,
    }
}

fn deployment() -> Deployment {
    Deployment {
        name: "claude".into(),
        provider: 0,
        model: "claude-sonnet-4-5".into(),
        context_window: 200_000,
        price: Price::default(),
        timeouts: DEFAULT_TIMEOUTS,
        capabilities: Capabilities::default(),
        breaker: Default::default(),
        degradation: Default::default(),
        limits: Default::default(),
        tags: Vec::new(),
    }
}

fn request(body: Value, native: Option<Value>) -> ChatRequest {
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let obj = |v: Value| match v {
        Value::Object(o) => o,
        _ => panic!("not an object"),
    };
    ChatRequest {
        body: obj(body),
        client: if native.is_some() {
            ClientFormat::Anthropic
        } else {
            ClientFormat::OpenAi
        },
        native_anthropic: native.map(obj),
        model: "route".into(),
        stream,
        include_usage: false,
        prompt_chars: 0,
        anthropic_headers: Vec::new(),
        output_cap: None,
        output_schema: None,
    }
}

fn build(body: Value) -> Value {
    let r = build_request(
        &provider("ANTHROPIC_KEY", &[]),
        &deployment(),
        &request(body, None),
        &Keys,
    )
    .unwrap();
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn openai_fixture_translated() {
    let body: Value = serde_json::from_str(include_str!(
        "testdata/chat_completions_request_tools_image.json"
    ))
    .unwrap();
    let p = provider(
        "ANTHROPIC_KEY",
        &[("anthropic-beta", "x"), ("Accept", "*/*")],
    );
    let r = build_request(&p, &deployment(), &request(body, None), &Keys).unwrap();
    assert_eq!(r.url, "https://api.anthropic.com/v1/messages");
    let h = |k: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(h("x-api-key"), Some("sk-ant-test"));
    assert_eq!(h("anthropic-version"), Some("2023-06-01"));
    assert_eq!(h("content-type"), Some("application/json"));
    assert_eq!(h("anthropic-beta"), Some("x"));
    assert_eq!(h("Accept"), Some("*/*"));
    assert_eq!(h("accept"), None);
    let b: Value = serde_json::from_slice(&r.body).unwrap();
    let url = "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg";
    let schema = json!({
        "type":"object",
        "properties":{
            "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
            "unit":{"type":"string","enum":["celsius","fahrenheit"]}
        },
        "required":["location"]
    });
    assert_eq!(
        b,
        json!({
            "model": "claude-sonnet-4-5",
            "system": "You are a helpful assistant.",
            "messages": [{"role":"user","content":[
                {"type":"text","text":"What is in this image?"},
                {"type":"image","source":{"type":"url","url":url}}
            ]}],
            "max_tokens": 4096,
            "stream": false,
            "tools": [{
                "name":"get_current_weather",
                "description":"Get the current weather in a given location",
                "input_schema": schema
            }],
            "tool_choice": {"type":"auto"}
        })
    );
}

#[test]
fn parameters() {
    let b = build(json!({
        "model":"route","messages":[{"role":"user","content":"hi"}],
        "max_tokens": 10, "max_completion_tokens": 20, "temperature": 1.7, "top_p": 1,
        "stop": ["END", " ", ""], "user": "u-1", "stream": true, "n": 1, "seed": 4,
        "logprobs": true, "presence_penalty": 0.5, "response_format": {"type":"json_object"},
        "stream_options": {"include_usage": true}, "tool_choice": "required"
    }));
    assert_eq!(b["max_tokens"], 20);
    assert_eq!(b["temperature"], 1.0);
    assert_eq!(b["stop_sequences"], json!(["END"]));
    assert_eq!(b["metadata"], json!({"user_id":"u-1"}));
    assert_eq!(b["stream"], true);
    for dropped in [
        "top_p",
        "n",
        "seed",
        "logprobs",
        "presence_penalty",
        "response_format",
        "stream_options",
        "user",
        "stop",
        "max_completion_tokens",
        "tool_choice",
    ] {
        assert!(b.get(dropped).is_none(), "{dropped}");
    }
    let b = build(
        json!({"model":"r","messages":[{"role":"user","content":"hi"}],
        "stop":"##","top_p":0.9,"temperature":-1}),
    );
    assert_eq!(b["stop_sequences"], json!(["##"]));
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["temperature"], 0.0);
}

#[test]
fn tool_choices() {
    let tools = json!([{"type":"function","function":{"name":"f"}}]);
    let choice = |tc: Value, parallel: Value| {
        build(
            json!({"model":"r","messages":[{"role":"user","content":"hi"}],
            "tools": tools, "tool_choice": tc, "parallel_tool_calls": parallel}),
        )
    };
    let b = choice(json!("none"), Value::Null);
    assert_eq!(b["tool_choice"], json!({"type":"none"}));
    assert_eq!(
        b["tools"][0]["input_schema"],
        json!({"type":"object","properties":{}})
    );
    assert_eq!(
        choice(json!("required"), json!(false))["tool_choice"],
        json!({"type":"any","disable_parallel_tool_use":true})
    );
    assert_eq!(
        choice(
            json!({"type":"function","function":{"name":"f"}}),
            json!(true)
        )["tool_choice"],
        json!({"type":"tool","name":"f"})
    );
    assert_eq!(
        choice(Value::Null, json!(false))["tool_choice"],
        json!({"type":"auto","disable_parallel_tool_use":true})
    );
    let bad = |body: Value| {
        build_request(
            &provider("ANTHROPIC_KEY", &[]),
            &deployment(),
            &request(body, None),
            &Keys,
        )
        .unwrap_err()
        .class
    };
    let m = json!([{"role":"user","content":"hi"}]);
    for body in [
        json!({"messages": m, "tools": tools, "tool_choice": "sometimes"}),
        json!({"messages": m, "tools": [{"type":"custom","custom":{"name":"x"}}]}),
        json!({"messages": m, "functions": [{"name":"f"}]}),
        json!({"messages": m, "n": 2}),
    ] {
        assert_eq!(bad(body), ErrorClass::InvalidRequest);
    }
}

#[test]
fn missing_secret_is_auth_error() {
    let e = build_request(
        &provider("OTHER_KEY", &[]),
        &deployment(),
        &request(json!({"messages":[{"role":"user","content":"hi"}]}), None),
        &Keys,
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthError);
    assert!(e.message.contains("OTHER_KEY"));
}

#[test]
fn native_passthrough() {
    let mut native: Value = serde_json::from_str(include_str!(
        "testdata/messages_request_system_tools_image_prefill.json"
    ))
    .unwrap();
    native["thinking"] = json!({"type":"enabled","budget_tokens":2048});
    let pivot = json!({"model":"route","messages":[{"role":"user","content":"x"}],"stream":true});
    let r = build_request(
        &provider("ANTHROPIC_KEY", &[]),
        &deployment(),
        &request(pivot.clone(), Some(native.clone())),
        &Keys,
    )
    .unwrap();
    let b: Value = serde_json::from_slice(&r.body).unwrap();
    let mut expected = native.clone();
    expected["stream"] = json!(true);
    assert_eq!(b, expected);
    native.as_object_mut().unwrap().remove("max_tokens");
    native["model"] = json!("claude-3-haiku");
    let r = build_request(
        &provider("ANTHROPIC_KEY", &[]),
        &deployment(),
        &request(pivot, Some(native)),
        &Keys,
    )
    .unwrap();
    let b: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(b["max_tokens"], 4096);
    assert_eq!(b["model"], "claude-sonnet-4-5");
    assert_eq!(b["thinking"]["budget_tokens"], 2048);
}
