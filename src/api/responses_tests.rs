use super::*;

fn parse(v: Value) -> Result<ChatRequest, ApiError> {
    parse_responses_request(v.to_string().as_bytes())
}

#[test]
fn a_string_input_is_one_user_message() {
    let r =
        parse(json!({"model": "m", "input": "Hello there", "instructions": "Be brief."})).unwrap();
    assert_eq!(r.client, ClientFormat::Responses);
    assert_eq!(r.model, "m");
    assert!(!r.stream && !r.include_usage);
    assert_eq!(
        r.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}])
    );
    assert_eq!(r.prompt_chars, "Be brief.".len() + "Hello there".len());
    assert!(r.body.get("stream").is_none());
}

#[test]
fn items_parameters_tools_and_format_translate_to_the_pivot() {
    let body = json!({
        "model": "gw", "stream": true, "store": false, "max_output_tokens": 300, "temperature": 0.2, "top_p": 0.9,
        "metadata": {"task": "code"}, "user": "u-1", "parallel_tool_calls": false,
        "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "low"},
        "tools": [{"type": "function", "name": "get_weather", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]}
        ]
    });
    let r = parse(body).unwrap();
    assert!(
        r.stream && r.include_usage,
        "a stream asks for the usage chunk"
    );
    let b = &r.body;
    assert_eq!(b["stream"], true);
    assert_eq!(b["max_tokens"], 300);
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["metadata"], json!({"task": "code"}));
    assert_eq!(b["user"], "u-1");
    assert_eq!(b["parallel_tool_calls"], false);
    assert_eq!(
        b["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
                 "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        b["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(
        b["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
    );
    for absent in [
        "include",
        "reasoning",
        "store",
        "input",
        "text",
        "max_output_tokens",
    ] {
        assert!(b.get(absent).is_none(), "{absent} is not forwarded");
    }
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m.len(), 5, "{m:?}");
    assert_eq!(m[0], json!({"role": "system", "content": "Use tools."}));
    assert_eq!(
        m[1]["content"],
        json!([{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}}])
    );
    assert_eq!(m[2]["role"], "assistant");
    assert_eq!(m[2]["content"], "Checking.");
    assert_eq!(m[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        m[2]["tool_calls"][1]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"})
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_2", "content": "rain"})
    );
    assert!(r.needs().tools && r.needs().vision && r.needs().json);
}

#[test]
fn a_function_call_first_opens_an_assistant_message_and_json_object_maps() {
    let r = parse(
        json!({"model": "m", "text": {"format": {"type": "json_object"}}, "tool_choice": "required",
        "input": [{"role": "user", "content": "go"},
                  {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c", "output": "ok"}]}),
    )
    .unwrap();
    let m = &r.body["messages"];
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"], Value::Null);
    assert_eq!(m[1]["tool_calls"][0]["function"]["name"], "f");
    assert_eq!(r.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(r.body["tool_choice"], "required");
    let plain =
        parse(json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}})).unwrap();
    assert!(plain.body.get("response_format").is_none());
}

#[test]
fn stateful_features_are_refused_with_a_clear_400() {
    for (extra, param, says) in [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
            "stateless",
        ),
        (json!({"store": true}), "store", "stateless"),
        (json!({"background": true}), "background", "background"),
        (
            json!({"conversation": "conv_1"}),
            "conversation",
            "conversations",
        ),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt", "prompt"),
    ] {
        let mut body = json!({"model": "m", "input": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let e = parse(body).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.code, "unsupported_parameter");
        assert_eq!(e.param.as_deref(), Some(param));
        assert!(e.message.contains(says), "{}", e.message);
    }
    // `store: false` and `previous_response_id: null` are fine.
    assert!(parse(
        json!({"model": "m", "input": "hi", "store": false, "previous_response_id": null})
    )
    .is_ok());
}

#[test]
fn bad_input_names_the_field() {
    let cases = [
        (json!({"input": "x"}), "model", "missing_required_parameter"),
        (json!({"model": "m"}), "input", "missing_required_parameter"),
        (json!({"model": "m", "input": []}), "input", "invalid_value"),
        (json!({"model": "m", "input": 3}), "input", "invalid_type"),
        (
            json!({"model": "m", "input": "x", "instructions": 1}),
            "instructions",
            "invalid_type",
        ),
        (
            json!({"model": "m", "input": [{"role": "system", "content": "only instructions"}]}),
            "input",
            "invalid_value",
        ),
        (
            json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
            "invalid_value",
        ),
        (
            json!({"model": "m", "input": [{"role": "user"}]}),
            "input[0].content",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0].type",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0]",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}),
            "input[0].content",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": [{"type": "web_search_call", "id": "ws_1"}]}),
            "input[0].type",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 5}]}),
            "input[0].output",
            "invalid_type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}),
            "tool_choice",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}),
            "text.format",
            "missing_required_parameter",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}),
            "text.format.type",
            "unsupported_value",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
            "invalid_value",
        ),
        (
            json!({"model": "m", "input": "x", "temperature": "hot"}),
            "temperature",
            "invalid_type",
        ),
        (
            json!({"model": "m", "input": "x", "stream": "yes"}),
            "stream",
            "invalid_type",
        ),
    ];
    for (body, param, code) in cases {
        let e = parse(body.clone()).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        assert_eq!(
            (e.param.as_deref(), e.code.as_str()),
            (Some(param), code),
            "{body}: {}",
            e.message
        );
    }
    let e = parse_responses_request(b"not json").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "invalid_json"));
}
