//! Builds the upstream request: the client's body (unknown fields included) with `model`
//! replaced by the deployment's model and, for streams, `stream_options.include_usage` forced
//! on so spend is always known. Per-server quirks: `stream_usage: false` leaves
//! `stream_options` out entirely; `max_tokens_field` renames the output limit.

use crate::api::ChatRequest;
use crate::config::{Deployment, OpenAiProvider};
use crate::providers::{api_key, HttpRequest, Secrets};
use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{Map, Value};

pub fn build_request(
    quirks: &OpenAiProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let provider = &quirks.http;
    let mut headers: Vec<(String, String)> = Vec::with_capacity(provider.headers.len() + 3);
    headers.push(("content-type".into(), "application/json".into()));
    headers.push((
        "accept".into(),
        if req.stream {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into(),
    ));
    if let Some(key) = api_key(provider, deployment, secrets)? {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    for (k, v) in &provider.headers {
        headers.retain(|(existing, _)| existing != k);
        headers.push((k.clone(), v.clone()));
    }

    let mut body: Map<String, Value> = req.body.clone();
    body.insert("model".into(), Value::String(deployment.model.clone()));
    if let Some(field) = &quirks.max_tokens_field {
        let other = if field == "max_tokens" {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        if let Some(v) = body.remove(other) {
            body.entry(field.clone()).or_insert(v);
        }
    }
    if req.stream && !quirks.stream_usage {
        body.remove("stream_options");
    } else if req.stream {
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let body = serde_json::to_vec(&body)
        .map_err(|e| UpstreamError::new(ErrorClass::InvalidRequest, e.to_string()))?;
    Ok(HttpRequest {
        url: format!("{}/chat/completions", provider.base_url),
        headers,
        body,
    })
}
