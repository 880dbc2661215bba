//! Gemini embeddings: one input → `POST {base_url}/models/{model}:embedContent` with
//! `{content: {parts: [{text}]}, outputDimensionality}`, answered `{embedding: {values}}`;
//! several → `:batchEmbedContents` with `{requests: [{model: "models/{model}", content,
//! outputDimensionality}]}`, answered `{embeddings: [{values}]}` in input order. The key goes
//! in `x-goog-api-key`, as for chat. `outputDimensionality` is always sent (the client's
//! `dimensions`, else the deployment's declared dimension), since Gemini's default may differ
//! from what the table declares. `user` has no Gemini field and is dropped. Gemini reports no
//! token count: the walk estimates it (`usage::estimate`) and marks it estimated.

use super::request::model_segment;
use crate::api::embeddings::EmbeddingsRequest;
use crate::config::{Deployment, HttpProvider};
use crate::embeddings::answer::vector_of;
use crate::providers::{api_key, HttpRequest, Secrets};
use crate::resilience::{ErrorClass, UpstreamError};
use serde_json::{json, Value};

pub fn build_embeddings(
    provider: &HttpProvider,
    deployment: &Deployment,
    req: &EmbeddingsRequest,
    dimensions: u32,
    secrets: &dyn Secrets,
) -> Result<HttpRequest, UpstreamError> {
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json".into()),
    ];
    if let Some(key) = api_key(provider, deployment, secrets)? {
        headers.push(("x-goog-api-key".into(), key));
    }
    for (k, v) in &provider.headers {
        headers.retain(|(existing, _)| existing != k);
        headers.push((k.clone(), v.clone()));
    }
    let segment = model_segment(&deployment.model);
    let content = |text: &str| json!({"parts": [{"text": text}]});
    let (method, body) = match req.inputs.as_slice() {
        [one] => (
            "embedContent",
            json!({"content": content(one), "outputDimensionality": dimensions}),
        ),
        many => {
            let requests: Vec<Value> = many
                .iter()
                .map(|text| {
                    json!({"model": format!("models/{segment}"), "content": content(text),
                           "outputDimensionality": dimensions})
                })
                .collect();
            ("batchEmbedContents", json!({ "requests": requests }))
        }
    };
    Ok(HttpRequest {
        url: format!("{}/models/{segment}:{method}", provider.base_url),
        headers,
        body: body.to_string().into_bytes(),
    })
}

/// The vectors of an `embedContent` or `batchEmbedContents` answer, in input order.
pub fn parse_embeddings(body: &[u8]) -> Result<Vec<Vec<f32>>, UpstreamError> {
    let bad = |m: &str| UpstreamError::new(ErrorClass::MalformedResponse, m.to_string());
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad("Gemini embeddings answer is not JSON"))?;
    let values = |e: &Value| {
        e.get("values")
            .and_then(vector_of)
            .ok_or_else(|| bad("a Gemini embedding has no `values` array of numbers"))
    };
    if let Some(one) = v.get("embedding") {
        return Ok(vec![values(one)?]);
    }
    let many = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("Gemini answer has neither `embedding` nor `embeddings`"))?;
    many.iter().map(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::embeddings::Encoding;
    use crate::config::{parse_table, ProviderKind, RoutingTable};

    const SINGLE: &str = include_str!("testdata/embed_content_response.json");
    const BATCH: &str = include_str!("testdata/batch_embed_contents_response.json");

    struct Keys;
    impl Secrets for Keys {
        fn get(&self, _: &str) -> Option<String> {
            Some("g-key".into())
        }
    }

    fn table() -> RoutingTable {
        parse_table(
            r#"{"version":1,"providers":{"g":{"kind":"gemini","base_url":"http://g/v1beta","api_key_secret":"G"}},
                "deployments":{"e":{"provider":"g","model":"gemini-embedding-001","context_window":2048,
                  "embedding":{"family":"gemini-embedding","dimensions":768}}},
                "routes":{"r":{"kind":"embeddings","chain":["e"]}}}"#,
        )
        .unwrap()
    }

    fn request(inputs: &[&str]) -> EmbeddingsRequest {
        EmbeddingsRequest {
            model: "r".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            dimensions: None,
            encoding: Encoding::Float,
            user: Some("dropped".into()),
        }
    }

    #[test]
    fn one_input_is_embed_content_several_are_a_batch() {
        let t = table();
        let ProviderKind::Gemini(p) = &t.providers[0].kind else {
            panic!()
        };
        let dep = &t.deployments[0];
        let one = build_embeddings(p, dep, &request(&["hello"]), 768, &Keys).unwrap();
        assert_eq!(
            one.url,
            "http://g/v1beta/models/gemini-embedding-001:embedContent"
        );
        assert!(one
            .headers
            .contains(&("x-goog-api-key".into(), "g-key".into())));
        let body: Value = serde_json::from_slice(&one.body).unwrap();
        assert_eq!(
            body,
            json!({"content":{"parts":[{"text":"hello"}]},"outputDimensionality":768})
        );
        let two = build_embeddings(p, dep, &request(&["a", "b"]), 256, &Keys).unwrap();
        assert_eq!(
            two.url,
            "http://g/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        let body: Value = serde_json::from_slice(&two.body).unwrap();
        assert_eq!(
            body["requests"][1],
            json!({"model":"models/gemini-embedding-001","content":{"parts":[{"text":"b"}]},
                   "outputDimensionality":256})
        );
    }

    #[test]
    fn official_answers_are_read() {
        let one = parse_embeddings(SINGLE.as_bytes()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], [0.013168523f32, -0.008711934, -0.046782676]);
        let batch = parse_embeddings(BATCH.as_bytes()).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1], [0.25f32, 0.5, -0.75]);
        let e = parse_embeddings(br#"{"embedding":{}}"#).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
        let e = parse_embeddings(br#"{"candidates":[]}"#).unwrap_err();
        assert_eq!(e.class, ErrorClass::MalformedResponse);
    }
}
