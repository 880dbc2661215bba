//! JSON Schema (as OpenAI clients write it) → Gemini `Schema` (the OpenAPI 3.0 subset that
//! `functionDeclarations[].parameters` and `generationConfig.responseSchema` accept).
//!
//! Gemini answers 400 to any key it does not know, so this keeps a whitelist of keys and
//! rewrites the few constructs that have an equivalent:
//! - kept as is: `type`, `title`, `description`, `nullable`, `enum`, `properties`, `required`
//!   (filtered to declared properties), `items` (a single schema), `anyOf`, `propertyOrdering`,
//!   `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`, `minItems`, `maxItems`,
//!   `minProperties`, `maxProperties`;
//! - `format` only where Gemini knows it (`date-time`/`enum` on strings, `int32`/`int64` on
//!   integers, `float`/`double` on numbers);
//! - `type: [T, "null"]` → `type: T, nullable: true` (several non-null types → `anyOf`);
//! - `const: "x"` → `enum: ["x"]`; `oneOf` → `anyOf` (Gemini has no exclusive choice);
//! - local `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined, up to a nesting limit
//!   (a recursive type is cut to an empty schema there); `allOf` is merged into one schema.
//!
//! Everything else is dropped, notably `additionalProperties` (extra keys become allowed),
//! `$schema`, `$id`, `$defs`/`definitions` (after inlining), `default`, `examples`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`, `uniqueItems`, `not`, `if`/`then`/
//! `else`, `patternProperties`, `strict` and tuple-form `items`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Deepest schema nesting converted (deeper parts become `{}`); bounds `$ref` expansion.
const MAX_DEPTH: usize = 32;
/// Most schema nodes produced for one schema, so `$ref` fan-out cannot blow up.
const MAX_NODES: usize = 10_000;

const COPIED: [&str; 14] = [
    "title",
    "description",
    "nullable",
    "enum",
    "propertyOrdering",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
];

/// Converts one JSON Schema into a Gemini schema.
pub fn to_gemini(schema: &Value) -> Value {
    let mut budget = MAX_NODES;
    convert(schema, schema, 0, &mut budget)
}

fn convert(node: &Value, root: &Value, depth: usize, budget: &mut usize) -> Value {
    let Value::Object(src) = node else {
        return Value::Object(Map::new());
    };
    if depth >= MAX_DEPTH || *budget == 0 {
        return Value::Object(Map::new());
    }
    *budget -= 1;
    let mut layers = Vec::new();
    expand(src, root, depth, budget, &mut layers);
    let get = |key: &str| layers.iter().rev().find_map(|l| l.get(key));
    let mut out = Map::new();
    for key in COPIED {
        if let Some(v) = get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    if let Some(c) = get("const").filter(|c| c.is_string()) {
        out.insert("enum".into(), Value::Array(vec![c.clone()]));
    }
    match get("type") {
        Some(Value::String(t)) => {
            out.insert("type".into(), Value::String(t.clone()));
        }
        Some(Value::Array(types)) => {
            let named: Vec<&Value> = types
                .iter()
                .filter(|t| t.as_str() != Some("null"))
                .collect();
            if named.len() < types.len() {
                out.insert("nullable".into(), Value::Bool(true));
            }
            match named.as_slice() {
                [one] => {
                    out.insert("type".into(), (*one).clone());
                }
                [] => {}
                many => {
                    let alts = many
                        .iter()
                        .map(|t| {
                            let mut m = Map::new();
                            m.insert("type".into(), (*t).clone());
                            Value::Object(m)
                        })
                        .collect();
                    out.insert("anyOf".into(), Value::Array(alts));
                }
            }
        }
        _ => {}
    }
    if let (Some(Value::String(f)), Some(Value::String(t))) = (get("format"), out.get("type")) {
        let known = match t.to_ascii_lowercase().as_str() {
            "string" => f == "date-time" || f == "enum",
            "integer" => f == "int32" || f == "int64",
            "number" => f == "float" || f == "double",
            _ => false,
        };
        if known {
            out.insert("format".into(), Value::String(f.clone()));
        }
    }
    // `properties` and `required` are unioned over the layers; later layers win.
    let mut props: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut required: Vec<&str> = Vec::new();
    let mut has_props = false;
    for layer in &layers {
        if let Some(Value::Object(p)) = layer.get("properties") {
            has_props = true;
            props.extend(p.iter().map(|(k, v)| (k.as_str(), v)));
        }
        if let Some(Value::Array(r)) = layer.get("required") {
            for name in r.iter().filter_map(Value::as_str) {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
        }
    }
    if has_props {
        required.retain(|name| props.contains_key(name));
        if !required.is_empty() {
            let req = required
                .iter()
                .map(|r| Value::String(r.to_string()))
                .collect();
            out.insert("required".into(), Value::Array(req));
        }
        let props: Map<String, Value> = props
            .into_iter()
            .map(|(k, v)| (k.to_string(), convert(v, root, depth + 1, budget)))
            .collect();
        out.insert("properties".into(), Value::Object(props));
    }
    if let Some(items) = get("items").filter(|i| i.is_object()) {
        out.insert("items".into(), convert(items, root, depth + 1, budget));
    }
    if let Some(Value::Array(alts)) = get("anyOf").or_else(|| get("oneOf")) {
        let alts = alts
            .iter()
            .map(|a| convert(a, root, depth + 1, budget))
            .collect();
        out.insert("anyOf".into(), Value::Array(alts));
    }
    Value::Object(out)
}

/// Flattens `$ref` targets and `allOf` parts into `layers`, lowest priority first; the
/// node's own keys come last and win.
fn expand<'a>(
    src: &'a Map<String, Value>,
    root: &'a Value,
    depth: usize,
    budget: &mut usize,
    layers: &mut Vec<&'a Map<String, Value>>,
) {
    if depth >= MAX_DEPTH || *budget == 0 {
        return;
    }
    *budget -= 1;
    if let Some(Value::String(r)) = src.get("$ref") {
        if let Some(Value::Object(target)) = resolve(root, r) {
            expand(target, root, depth + 1, budget, layers);
        }
    }
    if let Some(Value::Array(parts)) = src.get("allOf") {
        for part in parts {
            if let Value::Object(p) = part {
                expand(p, root, depth + 1, budget, layers);
            }
        }
    }
    layers.push(src);
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix("#/")?;
    path.split('/').try_fold(root, |node, segment| {
        node.get(segment.replace("~1", "/").replace("~0", "~"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_unknown_keys_and_rewrites() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "uri": {"type": "string", "format": "uri", "default": "x"},
                "note": {"type": ["string", "null"]},
                "kind": {"const": "a"},
                "additionalProperties": {"type": "integer", "exclusiveMinimum": 0},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
            },
            "required": ["when", "ghost"]
        });
        let g = to_gemini(&s);
        assert_eq!(
            g,
            json!({
                "type": "object",
                "properties": {
                    "when": {"type": "string", "format": "date-time"},
                    "uri": {"type": "string"},
                    "note": {"type": "string", "nullable": true},
                    "kind": {"enum": ["a"]},
                    "additionalProperties": {"type": "integer"},
                    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}
                },
                "required": ["when"]
            })
        );
    }

    #[test]
    fn inlines_refs_and_cuts_recursion() {
        let s = json!({
            "$defs": {
                "Pet": {"type": "object", "properties": {"name": {"type": "string"}}},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
            },
            "type": "object",
            "properties": {
                "pet": {"allOf": [{"$ref": "#/$defs/Pet"}], "description": "the pet"},
                "list": {"$ref": "#/$defs/Node"}
            }
        });
        let g = to_gemini(&s);
        assert_eq!(
            g["properties"]["pet"],
            json!({"type": "object", "description": "the pet",
                   "properties": {"name": {"type": "string"}}})
        );
        let mut node = &g["properties"]["list"];
        let mut levels = 0;
        while let Some(next) = node.get("properties").and_then(|p| p.get("next")) {
            node = next;
            levels += 1;
        }
        assert!(levels > 3 && levels < MAX_DEPTH, "{levels}");
    }
}
