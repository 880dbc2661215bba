//! The client's answer, in OpenAI's shape: `{"object": "list", "data": [{"object":
//! "embedding", "index", "embedding"}], "model": <route>, "usage": {"prompt_tokens",
//! "total_tokens"}}`, vectors as float arrays or base64; and the check every upstream answer
//! passes first (one vector per input, each of the expected length, finite numbers), so a
//! short, long or broken answer is a failed attempt, never the caller's vector.

use super::base64::encode_f32_le;
use crate::api::embeddings::Encoding;
use crate::resilience::{ErrorClass, UpstreamError};
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    object: &'static str,
    data: Vec<Item<'a>>,
    model: &'a str,
    usage: UsageOut,
}

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The answer body for `route`.
pub fn answer_body(route: &str, vectors: &[Vec<f32>], encoding: Encoding, tokens: u64) -> Vec<u8> {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| Item {
            object: "embedding",
            index,
            embedding: match encoding {
                Encoding::Float => Vector::Float(v),
                Encoding::Base64 => Vector::Base64(encode_f32_le(v)),
            },
        })
        .collect();
    let body = Body {
        object: "list",
        data,
        model: route,
        usage: UsageOut {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Checks an upstream's vectors: `inputs` of them, each `dimensions` long, all finite.
pub fn check(vectors: &[Vec<f32>], inputs: usize, dimensions: u32) -> Result<(), UpstreamError> {
    let bad = |m: String| Err(UpstreamError::new(ErrorClass::MalformedResponse, m));
    if vectors.len() != inputs {
        return bad(format!(
            "upstream returned {} embedding(s) for {inputs} input(s)",
            vectors.len()
        ));
    }
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != dimensions as usize {
            return bad(format!(
                "upstream embedding {i} has {} dimensions, expected {dimensions}",
                v.len()
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return bad(format!("upstream embedding {i} holds a non-finite number"));
        }
    }
    Ok(())
}

/// Reads a JSON array of numbers as a vector (None if it is not one).
pub fn vector_of(v: &serde_json::Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn openai_shape_floats_and_base64() {
        let vectors = vec![vec![0.5f32, -0.25], vec![1.0, 0.0]];
        let v: Value =
            serde_json::from_slice(&answer_body("emb", &vectors, Encoding::Float, 7)).unwrap();
        assert_eq!(
            v,
            json!({"object":"list","model":"emb",
                   "data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]},
                           {"object":"embedding","index":1,"embedding":[1.0,0.0]}],
                   "usage":{"prompt_tokens":7,"total_tokens":7}})
        );
        let v: Value =
            serde_json::from_slice(&answer_body("emb", &vectors, Encoding::Base64, 7)).unwrap();
        assert_eq!(v["data"][1]["embedding"], "AACAPwAAAAA=");
    }

    #[test]
    fn floats_keep_their_f32_spelling() {
        let body = answer_body("e", &[vec![0.1f32]], Encoding::Float, 1);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("[0.1]"), "{text}");
    }

    #[test]
    fn wrong_count_length_or_numbers_are_malformed() {
        let ok = vec![vec![0.0f32; 3]; 2];
        assert!(check(&ok, 2, 3).is_ok());
        for (vectors, n, d) in [
            (vec![vec![0.0f32; 3]], 2, 3),
            (vec![vec![0.0f32; 4], vec![0.0; 4]], 2, 3),
            (vec![vec![f32::NAN, 0.0, 0.0]], 1, 3),
        ] {
            let e = check(&vectors, n, d).unwrap_err();
            assert_eq!(e.class, ErrorClass::MalformedResponse);
        }
    }
}
