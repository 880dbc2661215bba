//! `POST /v1/embeddings`, OpenAI's shape: the request parsed and checked before any routing,
//! with OpenAI-style 400s naming the field at fault.
//!
//! Accepted: `model`; `input` as a string or an array of 1 to 2048 strings (none empty);
//! `dimensions` (a positive integer, checked against the route's declared dimension later);
//! `encoding_format` `"float"` (default) or `"base64"`; `user` (a string, not forwarded).
//! Refused with a 400: OpenAI's token-array forms (an array of integers, or of arrays of
//! integers): the gateway routes across providers that take text only, and token ids of one
//! tokenizer mean nothing to another. Other fields are ignored.

use super::ApiError;
use crate::config::Route;
use serde_json::{Map, Value};

/// OpenAI's limit on inputs per request.
pub const MAX_INPUTS: usize = 2048;

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// JSON arrays of numbers.
    #[default]
    Float,
    /// Little-endian f32 bytes, base64-encoded (as OpenAI does).
    Base64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    /// The route asked for.
    pub model: String,
    /// At least one, none empty.
    pub inputs: Vec<String>,
    pub dimensions: Option<u32>,
    pub encoding: Encoding,
    pub user: Option<String>,
}

impl EmbeddingsRequest {
    /// Characters of all inputs (the token estimate's base).
    pub fn input_chars(&self) -> usize {
        self.inputs.iter().map(|s| s.chars().count()).sum()
    }
}

pub fn parse_embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "model",
                "`model` must not be empty",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_type",
                "model",
                "`model` must be a string",
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "missing_required_parameter",
                "model",
                "you must provide a model parameter",
            ))
        }
    };
    Ok(EmbeddingsRequest {
        model,
        inputs: inputs(obj.get("input"))?,
        dimensions: dimensions(obj.get("dimensions"))?,
        encoding: encoding(obj.get("encoding_format"))?,
        user: user(&obj)?,
    })
}

/// 400 for a request on a route of the other kind (`endpoint`: where the route is served).
pub fn wrong_kind(route: &Route, endpoint: &str) -> ApiError {
    ApiError::invalid(
        "model_not_supported",
        "model",
        format!(
            "model `{}` is a {} route: call {endpoint}",
            route.name,
            route.kind.as_str()
        ),
    )
}

fn inputs(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let empty = |param: &str| {
        ApiError::invalid(
            "invalid_value",
            param,
            format!("`{param}` must not be empty"),
        )
    };
    match v {
        None | Some(Value::Null) => Err(ApiError::invalid(
            "missing_required_parameter",
            "input",
            "you must provide an input parameter",
        )),
        Some(Value::String(s)) if s.is_empty() => Err(empty("input")),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(empty("input"));
            }
            if items.len() > MAX_INPUTS {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "input",
                    format!(
                        "`input` has {} items; at most {MAX_INPUTS} are allowed per request",
                        items.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let param = format!("input[{i}]");
                match item {
                    Value::String(s) if s.is_empty() => return Err(empty(&param)),
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays(&param)),
                    _ => {
                        return Err(ApiError::invalid(
                            "invalid_type",
                            &param,
                            format!("`{param}` must be a string"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            "input",
            "`input` must be a string or an array of strings",
        )),
    }
}

fn token_arrays(param: &str) -> ApiError {
    ApiError::invalid(
        "unsupported_value",
        param,
        format!(
            "`{param}`: token arrays are not supported by this gateway (its deployments may use \
             different tokenizers); send the text as a string"
        ),
    )
}

fn dimensions(v: Option<&Value>) -> Result<Option<u32>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Ok(Some(n as u32)),
            _ => Err(ApiError::invalid(
                "invalid_value",
                "dimensions",
                "`dimensions` must be a positive integer",
            )),
        },
    }
}

fn encoding(v: Option<&Value>) -> Result<Encoding, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Encoding::Float),
        Some(Value::String(s)) if s == "float" => Ok(Encoding::Float),
        Some(Value::String(s)) if s == "base64" => Ok(Encoding::Base64),
        Some(_) => Err(ApiError::invalid(
            "invalid_value",
            "encoding_format",
            "`encoding_format` must be \"float\" or \"base64\"",
        )),
    }
}

fn user(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match obj.get("user") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(
            "invalid_type",
            "user",
            "`user` must be a string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> (String, Option<String>) {
        let e = parse_embeddings_request(body.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        (e.code, e.param)
    }

    #[test]
    fn a_string_or_strings_with_options() {
        let r = parse_embeddings_request(br#"{"model":"e","input":"hi"}"#).unwrap();
        assert_eq!(r.inputs, ["hi"]);
        assert_eq!((r.dimensions, r.encoding), (None, Encoding::Float));
        let r = parse_embeddings_request(
            br#"{"model":"e","input":["a","bc"],"dimensions":256,"encoding_format":"base64","user":"u1"}"#,
        )
        .unwrap();
        assert_eq!(r.inputs, ["a", "bc"]);
        assert_eq!(r.dimensions, Some(256));
        assert_eq!(r.encoding, Encoding::Base64);
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.input_chars(), 3);
    }

    #[test]
    fn bad_requests_name_their_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("nope", "invalid_json", ""),
            ("[]", "invalid_json", ""),
            (r#"{"input":"x"}"#, "missing_required_parameter", "model"),
            (r#"{"model":"e"}"#, "missing_required_parameter", "input"),
            (r#"{"model":"e","input":""}"#, "invalid_value", "input"),
            (r#"{"model":"e","input":[]}"#, "invalid_value", "input"),
            (
                r#"{"model":"e","input":["a",""]}"#,
                "invalid_value",
                "input[1]",
            ),
            (
                r#"{"model":"e","input":["a",{}]}"#,
                "invalid_type",
                "input[1]",
            ),
            (
                r#"{"model":"e","input":[1,2]}"#,
                "unsupported_value",
                "input[0]",
            ),
            (
                r#"{"model":"e","input":[[1,2]]}"#,
                "unsupported_value",
                "input[0]",
            ),
            (r#"{"model":"e","input":5}"#, "invalid_type", "input"),
            (
                r#"{"model":"e","input":"a","dimensions":0}"#,
                "invalid_value",
                "dimensions",
            ),
            (
                r#"{"model":"e","input":"a","dimensions":-3}"#,
                "invalid_value",
                "dimensions",
            ),
            (
                r#"{"model":"e","input":"a","dimensions":1.5}"#,
                "invalid_value",
                "dimensions",
            ),
            (
                r#"{"model":"e","input":"a","encoding_format":"hex"}"#,
                "invalid_value",
                "encoding_format",
            ),
            (
                r#"{"model":"e","input":"a","user":3}"#,
                "invalid_type",
                "user",
            ),
        ];
        for (body, code, param) in cases {
            let (c, p) = err(body);
            assert_eq!(c, *code, "{body}");
            assert_eq!(p.unwrap_or_default(), *param, "{body}");
        }
    }

    #[test]
    fn at_most_2048_inputs() {
        let many = |n: usize| {
            let items: Vec<String> = (0..n).map(|i| format!("\"t{i}\"")).collect();
            format!(r#"{{"model":"e","input":[{}]}}"#, items.join(","))
        };
        assert_eq!(
            parse_embeddings_request(many(2048).as_bytes())
                .unwrap()
                .inputs
                .len(),
            2048
        );
        assert_eq!(err(&many(2049)).0, "invalid_value");
    }
}
