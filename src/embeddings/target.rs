//! One embeddings attempt's upstream call per provider kind, and the reading of its answer.
//! Mapped: `openai` (`/embeddings`), `gemini` (`embedContent` / `batchEmbedContents`), the
//! built-in `mock` (deterministic vectors, its configured failure and latency). Refused:
//! `anthropic`, which has no embeddings API (validation already keeps it out of embeddings
//! routes; here it is a failed attempt, should one get through).

use super::answer::check;
use super::Embedded;
use crate::api::embeddings::EmbeddingsRequest;
use crate::config::{Deployment, ProviderKind, RoutingTable};
use crate::providers::{gemini, mock, openai, Format, HttpRequest, Secrets};
use crate::resilience::{ErrorClass, UpstreamError};
use crate::usage::estimate;

#[derive(Debug)]
pub enum EmbedTarget {
    Http(HttpRequest, Format),
    /// The mock's answer (or its configured failure), after `latency_ms`.
    Mock {
        result: Result<Embedded, UpstreamError>,
        latency_ms: u64,
    },
}

/// The length of the vectors asked for: the client's `dimensions`, else the deployment's.
pub fn dimensions_of(dep: &Deployment, req: &EmbeddingsRequest) -> u32 {
    req.dimensions
        .or(dep.embedding.as_ref().map(|e| e.dimensions))
        .unwrap_or(1)
}

/// Tokens of the inputs by the gateway's estimate (≈ 4 characters per token).
pub fn estimated_tokens(req: &EmbeddingsRequest) -> u64 {
    req.inputs
        .iter()
        .map(|s| estimate::tokens(s.chars().count()))
        .sum()
}

pub fn build(
    table: &RoutingTable,
    dep: &Deployment,
    req: &EmbeddingsRequest,
    secrets: &dyn Secrets,
) -> Result<EmbedTarget, UpstreamError> {
    let provider = table.provider_of(dep).ok_or_else(|| {
        UpstreamError::new(
            ErrorClass::NotFound,
            "deployment refers to a missing provider",
        )
    })?;
    let dims = dimensions_of(dep, req);
    match &provider.kind {
        ProviderKind::OpenAi(p) => openai::embeddings::build_embeddings(p, dep, req, secrets)
            .map(|r| EmbedTarget::Http(r, Format::OpenAi)),
        ProviderKind::Gemini(p) => gemini::embeddings::build_embeddings(p, dep, req, dims, secrets)
            .map(|r| EmbedTarget::Http(r, Format::Gemini)),
        ProviderKind::Anthropic(_) => Err(UpstreamError::new(
            ErrorClass::NotFound,
            format!(
                "deployment {:?} is on an anthropic provider, which has no embeddings API",
                dep.name
            ),
        )),
        ProviderKind::Mock(m) => {
            let result = match m.fail_status {
                Some(status) => {
                    let body = serde_json::json!({"error": {
                        "message": format!("mock deployment {} is configured to fail with HTTP {status}", dep.name),
                        "type": if status >= 500 { "server_error" } else { "invalid_request_error" },
                        "param": null, "code": "mock_failure"}});
                    let retry = m.retry_after_s.map(|s| u64::from(s) * 1000);
                    Err(openai::classify_error(
                        status,
                        body.to_string().as_bytes(),
                        retry,
                    ))
                }
                None => Ok(Embedded {
                    vectors: req
                        .inputs
                        .iter()
                        .map(|s| mock::embeddings::vector(&dep.model, s, dims))
                        .collect(),
                    prompt_tokens: estimated_tokens(req),
                    estimated: false,
                    model: Some(dep.model.clone()),
                }),
            };
            Ok(EmbedTarget::Mock {
                result,
                latency_ms: m.latency_ms,
            })
        }
    }
}

/// A 2xx answer in `format`, checked against the request (count and dimension).
pub fn parse(
    format: Format,
    body: &[u8],
    dep: &Deployment,
    req: &EmbeddingsRequest,
) -> Result<Embedded, UpstreamError> {
    let embedded = match format {
        Format::OpenAi => {
            let (vectors, tokens, model) = openai::embeddings::parse_embeddings(body)?;
            Embedded {
                vectors,
                prompt_tokens: tokens.unwrap_or_else(|| estimated_tokens(req)),
                estimated: tokens.is_none(),
                model,
            }
        }
        Format::Gemini => Embedded {
            vectors: gemini::embeddings::parse_embeddings(body)?,
            prompt_tokens: estimated_tokens(req),
            estimated: true,
            model: Some(dep.model.clone()),
        },
        Format::Anthropic => {
            return Err(UpstreamError::new(
                ErrorClass::MalformedResponse,
                "anthropic has no embeddings API",
            ))
        }
    };
    check(&embedded.vectors, req.inputs.len(), dimensions_of(dep, req))?;
    Ok(embedded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::embeddings::Encoding;
    use crate::config::parse_table;

    struct NoKeys;
    impl Secrets for NoKeys {
        fn get(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn req(inputs: &[&str], dimensions: Option<u32>) -> EmbeddingsRequest {
        EmbeddingsRequest {
            model: "e".into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            dimensions,
            encoding: Encoding::Float,
            user: None,
        }
    }

    fn table() -> RoutingTable {
        parse_table(
            r#"{"version":1,
                "providers":{"m":{"kind":"mock"},"down":{"kind":"mock","mock":{"fail_status":503}},
                             "g":{"kind":"gemini","base_url":"http://g"}},
                "deployments":{
                  "m":{"provider":"m","model":"mock-embed-1","context_window":8191,
                       "embedding":{"family":"mock-embed","dimensions":8}},
                  "down":{"provider":"down","model":"mock-embed-1","context_window":8191,
                       "embedding":{"family":"mock-embed","dimensions":8}},
                  "g":{"provider":"g","model":"gemini-embedding-001","context_window":2048,
                       "embedding":{"family":"gemini-embedding","dimensions":3}}},
                "routes":{"e":{"kind":"embeddings","chain":["m","down"]},
                          "g":{"kind":"embeddings","chain":["g"]}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_mock_answers_deterministic_vectors_of_the_declared_or_asked_dimension() {
        let t = table();
        let dep = t.deployments.iter().find(|d| d.name == "m").unwrap();
        let run = |r: &EmbeddingsRequest| match build(&t, dep, r, &NoKeys).unwrap() {
            EmbedTarget::Mock { result, .. } => result.unwrap(),
            other => panic!("{other:?}"),
        };
        let a = run(&req(&["hello", "world"], None));
        assert_eq!(a.vectors.len(), 2);
        assert_eq!(a.vectors[0].len(), 8);
        assert_eq!(a.vectors, run(&req(&["hello", "world"], None)).vectors);
        assert_eq!(run(&req(&["hello"], None)).vectors[0], a.vectors[0]);
        assert_eq!(run(&req(&["hello"], Some(4))).vectors[0].len(), 4);
        assert_eq!(a.prompt_tokens, 4, "2 + 2 estimated tokens");
    }

    #[test]
    fn a_failing_mock_is_classified_like_an_upstream() {
        let t = table();
        let dep = t.deployments.iter().find(|d| d.name == "down").unwrap();
        let EmbedTarget::Mock { result, .. } = build(&t, dep, &req(&["x"], None), &NoKeys).unwrap()
        else {
            panic!()
        };
        assert_eq!(result.unwrap_err().class, ErrorClass::Overloaded);
    }

    #[test]
    fn gemini_answers_get_an_estimated_count_and_are_checked() {
        let t = table();
        let dep = t.deployments.iter().find(|d| d.name == "g").unwrap();
        let ok = parse(
            Format::Gemini,
            br#"{"embedding":{"values":[0.1,0.2,0.3]}}"#,
            dep,
            &req(&["twelve chars"], None),
        )
        .unwrap();
        assert!(ok.estimated);
        assert_eq!(ok.prompt_tokens, 3);
        let short = parse(
            Format::Gemini,
            br#"{"embedding":{"values":[0.1,0.2]}}"#,
            dep,
            &req(&["x"], None),
        )
        .unwrap_err();
        assert_eq!(short.class, ErrorClass::MalformedResponse);
    }
}
