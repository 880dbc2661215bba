//! OpenAI-compatible embeddings: `POST {base_url}/embeddings` with `{model, input,
//! encoding_format: "float"}`, `dimensions` and `user` when the client gave them. The
//! gateway always asks for floats (and encodes base64 itself when the client wants it), so
//! every upstream answer is read the same way. Headers as for chat (bearer key, the
//! provider's own headers).

use crate::api::embeddings::EmbeddingsRequest;
use crate::config::{Deployment, OpenAiProvider};
use crate::embeddings::answer::vector_of;
use crate::providers::{api_key, HttpRequest, Secrets};
use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{json, Value};

pub fn build_embeddings(
    quirks: &OpenAiProvider,
    deployment: &Deployment,
    req: &EmbeddingsRequest,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let provider = &quirks.http;
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json".into()),
    ];
    if let Some(key) = api_key(provider, deployment, secrets)? {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    for (k, v) in &provider.headers {
        headers.retain(|(existing, _)| existing != k);
        headers.push((k.clone(), v.clone()));
    }
    let mut body = serde_json::Map::new();
    body.insert("model".into(), json!(deployment.model));
    body.insert("input".into(), json!(req.inputs));
    body.insert("encoding_format".into(), json!("float"));
    if let Some(d) = req.dimensions {
        body.insert("dimensions".into(), json!(d));
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), json!(u));
    }
    let body = Value::Object(body);
    Ok(HttpRequest {
        url: format!("{}/embeddings", provider.base_url),
        headers,
        body: body.to_string().into_bytes(),
    })
}

/// An answer read: the vectors (in input order), the prompt tokens if reported, the model.
pub type Parsed = (Vec<Vec<f32>>, Option<u64>, Option<String>);

/// The vectors (in input order, by `index`), the prompt tokens if reported, and the model.
pub fn parse_embeddings(body: &[u8]) -> Result<Parsed, UpstreamError> {
    let bad = |m: &str| UpstreamError::new(ErrorClass::MalformedResponse, m.to_string());
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad("embeddings answer is not JSON"))?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("embeddings answer has no `data` array"))?;
    let mut indexed: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(i as u64);
        let vector = item
            .get("embedding")
            .and_then(vector_of)
            .ok_or_else(|| bad("an embedding is not an array of numbers"))?;
        indexed.push((index, vector));
    }
    indexed.sort_by_key(|(i, _)| *i);
    if indexed
        .iter()
        .enumerate()
        .any(|(i, (idx, _))| *idx != i as u64)
    {
        return Err(bad("embedding indices are not 0..n"));
    }
    let tokens = v
        .get("usage")
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64);
    let model = v.get("model").and_then(Value::as_str).map(str::to_string);
    Ok((indexed.into_iter().map(|(_, v)| v).collect(), tokens, model))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_table, ProviderKind};

    const ANSWER: &str = include_str!("testdata/embeddings_response.json");

    struct Keys;
    impl Secrets for Keys {
        fn get(&self, _: &str) -> Option<String> {
            Some("sk-test".into())
        }
    }

    #[test]
    fn the_request_asks_for_floats_with_the_deployments_model() {
        let t = parse_table(
            r#"{"version":1,"providers":{"oa":{"kind":"openai","base_url":"http://up/v1","api_key_secret":"K"}},
                "deployments":{"e":{"provider":"oa","model":"text-embedding-3-small","context_window":8191,
                  "embedding":{"family":"text-embedding-3","dimensions":1536}}},
                "routes":{"r":{"kind":"embeddings","chain":["e"]}}}"#,
        )
        .unwrap();
        let ProviderKind::OpenAi(p) = &t.providers[0].kind else {
            panic!()
        };
        let req = EmbeddingsRequest {
            model: "r".into(),
            inputs: vec!["a".into(), "b".into()],
            dimensions: Some(256),
            encoding: crate::api::embeddings::Encoding::Base64,
            user: Some("u".into()),
        };
        let http = build_embeddings(p, &t.deployments[0], &req, &Keys).unwrap();
        assert_eq!(http.url, "http://up/v1/embeddings");
        assert!(http
            .headers
            .contains(&("authorization".into(), "Bearer sk-test".into())));
        let body: Value = serde_json::from_slice(&http.body).unwrap();
        assert_eq!(
            body,
            json!({"model":"text-embedding-3-small","input":["a","b"],
                   "encoding_format":"float","dimensions":256,"user":"u"})
        );
    }

    #[test]
    fn the_official_answer_is_read_in_index_order() {
        let (vectors, tokens, model) = parse_embeddings(ANSWER.as_bytes()).unwrap();
        assert_eq!(vectors.len(), 2);
        assert_eq!(vectors[0], [0.0023064255f32, -0.009327292, -0.0028842222]);
        assert_eq!(vectors[1][0], 0.5);
        assert_eq!(tokens, Some(8));
        assert_eq!(model.as_deref(), Some("text-embedding-3-small"));
        let e = parse_embeddings(br#"{"data":[{"embedding":"AAAA"}]}"#).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
        let e = parse_embeddings(br#"{"object":"list"}"#).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
    }
}
