//! Non-streaming answers: checked and measured, then forwarded byte for byte.

use super::errors::in_band_class;
use crate::providers::ParsedResponse;
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::Usage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Light {
    choices: Option<Vec<Value>>,
    usage: Option<Value>,
    model: Option<String>,
    error: Option<Value>,
}

pub fn parse_response(body: Vec<u8>) -> Result<ParsedResponse, UpstreamError> {
    let light: Light = serde_json::from_slice(&body).map_err(|e| {
        UpstreamError::new(
            ErrorClass::MalformedResponse,
            format!("upstream answer is not valid JSON: {e}"),
        )
    })?;
    if let Some(err) = light.error.filter(|e| !e.is_null()) {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        let mut e = UpstreamError::new(
            in_band_class(&s("code"), &s("type"), &message.to_ascii_lowercase()),
            message,
        );
        e.body = Some(body);
        return Err(e);
    }
    match light.choices {
        Some(c) if !c.is_empty() => {}
        _ => {
            return Err(UpstreamError::new(
                ErrorClass::MalformedResponse,
                "upstream answer has no choices",
            ))
        }
    }
    Ok(ParsedResponse {
        usage: light.usage.as_ref().and_then(Usage::from_openai),
        model: light.model,
        body,
        native: None,
    })
}
