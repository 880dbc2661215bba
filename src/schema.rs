//! Checks an answer against the JSON Schema a request asked for (`response_format:
//! {type: "json_schema", json_schema: {strict: true, schema}}`), so that a fallback to another
//! model cannot hand the caller `"rating": "4.5"` where the schema says a number.
//!
//! The keywords are those of OpenAI's strict structured outputs: `type` (a name or a list of
//! names), `properties`, `required`, `additionalProperties` (a boolean or a schema), `items`,
//! `enum`, `const`, `anyOf`, `allOf`, `$ref` to `#`, `#/$defs/…` or `#/definitions/…`, and the
//! constraints `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//! `minLength`, `maxLength`, `pattern`, `minItems`, `maxItems`. Annotations (`description`,
//! `title`, `format`, `default`, …) are not checked. A keyword this validator does not know is
//! ignored, as JSON Schema says; a `$ref` it cannot resolve, or deeper than `MAX_DEPTH`, is a
//! violation (never a pass). Pure.

use regex_lite::Regex;
use serde_json::{Map, Value};

/// Deepest nesting of schemas (through `$ref`, `anyOf`, properties, items) checked.
const MAX_DEPTH: usize = 64;

/// Where the answer breaks the schema, and how (`path` is a JSON pointer into the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// The first violation of `schema` by `value`, if any.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Violation> {
    Checker { root: schema }.check(schema, value, "", 0)
}

/// The strict JSON schema a chat request asks its answer to follow, if any.
pub fn requested(body: &Map<String, Value>) -> Option<&Value> {
    let f = body.get("response_format")?;
    if f.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    let js = f.get("json_schema")?;
    (js.get("strict").and_then(Value::as_bool) == Some(true))
        .then(|| js.get("schema"))
        .flatten()
}

struct Checker<'s> {
    root: &'s Value,
}

fn fail(path: &str, message: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        path: path.to_string(),
        message: message.into(),
    })
}

impl<'s> Checker<'s> {
    fn check(
        &self,
        schema: &'s Value,
        v: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        if depth > MAX_DEPTH {
            return fail(path, "the schema nests too deeply to check");
        }
        let s = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return fail(path, "no value is allowed here"),
            Value::Object(s) => s,
            _ => return Ok(()),
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let Some(target) = self.resolve(r) else {
                return fail(path, format!("unresolvable $ref {r:?}"));
            };
            self.check(target, v, path, depth + 1)?;
        }
        if let Some(t) = s.get("type") {
            type_ok(t, v, path)?;
        }
        if let Some(options) = s.get("enum").and_then(Value::as_array) {
            if !options.iter().any(|o| same(o, v)) {
                return fail(
                    path,
                    format!("{v} is not one of {}", Value::Array(options.clone())),
                );
            }
        }
        if let Some(c) = s.get("const") {
            if !same(c, v) {
                return fail(path, format!("{v} is not {c}"));
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            if !any
                .iter()
                .any(|sub| self.check(sub, v, path, depth + 1).is_ok())
            {
                return fail(path, "matches none of anyOf");
            }
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(sub, v, path, depth + 1)?;
        }
        match v {
            Value::Object(o) => self.object(s, o, path, depth),
            Value::Array(a) => self.array(s, a, path, depth),
            Value::String(t) => string(s, t, path),
            Value::Number(_) => number(s, v, path),
            _ => Ok(()),
        }
    }

    fn resolve(&self, r: &str) -> Option<&'s Value> {
        if r == "#" {
            return Some(self.root);
        }
        let pointer = r.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn object(
        &self,
        s: &'s Map<String, Value>,
        o: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        let props = s.get("properties").and_then(Value::as_object);
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = name.as_str() {
                if !o.contains_key(n) {
                    return fail(path, format!("missing required property {n:?}"));
                }
            }
        }
        for (k, val) in o {
            let at = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
            match props.and_then(|p| p.get(k)) {
                Some(sub) => self.check(sub, val, &at, depth + 1)?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return fail(path, format!("property {k:?} is not allowed"))
                    }
                    Some(sub @ Value::Object(_)) => self.check(sub, val, &at, depth + 1)?,
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn array(
        &self,
        s: &'s Map<String, Value>,
        a: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<(), Violation> {
        let n = a.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if n < min {
                return fail(path, format!("{n} items, fewer than minItems {min}"));
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                return fail(path, format!("{n} items, more than maxItems {max}"));
            }
        }
        if let Some(items) = s.get("items") {
            for (i, item) in a.iter().enumerate() {
                self.check(items, item, &format!("{path}/{i}"), depth + 1)?;
            }
        }
        Ok(())
    }
}

fn type_ok(t: &Value, v: &Value, path: &str) -> Result<(), Violation> {
    let names: Vec<&str> = match t {
        Value::String(n) => vec![n.as_str()],
        Value::Array(ns) => ns.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    if names.iter().any(|n| is_type(n, v)) {
        return Ok(());
    }
    fail(
        path,
        format!("{} is not of type {}", kind_of(v), names.join(" or ")),
    )
}

fn is_type(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => {
            v.is_i64()
                || v.is_u64()
                || v.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON equality, with numbers compared by value (1 and 1.0 are the same number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

fn string(s: &Map<String, Value>, t: &str, path: &str) -> Result<(), Violation> {
    let n = t.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
        if n < min {
            return fail(path, format!("{n} characters, fewer than minLength {min}"));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
        if n > max {
            return fail(path, format!("{n} characters, more than maxLength {max}"));
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        match Regex::new(p) {
            Ok(re) if re.is_match(t) => {}
            Ok(_) => return fail(path, format!("does not match the pattern {p:?}")),
            Err(_) => return fail(path, format!("the schema's pattern {p:?} is not supported")),
        }
    }
    Ok(())
}

/// A numeric bound: its keyword, whether a value passes it, and how a failure reads.
type Bound = (&'static str, fn(f64, f64) -> bool, &'static str);

fn number(s: &Map<String, Value>, v: &Value, path: &str) -> Result<(), Violation> {
    let Some(x) = v.as_f64() else { return Ok(()) };
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    let checks: [Bound; 4] = [
        ("minimum", |x, b| x >= b, "below"),
        ("maximum", |x, b| x <= b, "above"),
        ("exclusiveMinimum", |x, b| x > b, "not above"),
        ("exclusiveMaximum", |x, b| x < b, "not below"),
    ];
    for (k, ok, word) in checks {
        if let Some(b) = bound(k) {
            if !ok(x, b) {
                return fail(path, format!("{v} is {word} {k} {b}"));
            }
        }
    }
    if let Some(m) = bound("multipleOf").filter(|m| *m > 0.0) {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 {
            return fail(path, format!("{v} is not a multiple of {m}"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
