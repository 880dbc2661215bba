//! Builds the upstream request: the client's body with `model` replaced by the deployment's
//! model and, for streams, `stream_options.include_usage` forced on so spend is always known.

use crate::api::ChatRequest;
use crate::config::{Deployment, HttpProvider};
use crate::providers::{HttpRequest, Secrets};
use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{Map, Value};

pub fn build_request(
    provider: &HttpProvider,
    deployment: &Deployment,
    req: &ChatRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
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
    if let Some(secret) = &provider.api_key_secret {
        let key = secrets
            .get(secret)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                UpstreamError::new(
                    ErrorClass::AuthError,
                    format!(
                        "Worker secret {secret:?} for deployment {:?} is not set",
                        deployment.name
                    ),
                )
            })?;
        if key.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(UpstreamError::new(
                ErrorClass::AuthError,
                format!("Worker secret {secret:?} contains a line break"),
            ));
        }
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    for (k, v) in &provider.headers {
        headers.retain(|(existing, _)| existing != k);
        headers.push((k.clone(), v.clone()));
    }

    let mut body: Map<String, Value> = req.body.clone();
    body.insert("model".into(), Value::String(deployment.model.clone()));
    if req.stream {
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
