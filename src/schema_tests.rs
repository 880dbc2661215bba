//! The strict-mode schema subset, keyword by keyword, and the fallback case that motivates it.

use super::*;
use serde_json::json;

fn ok(schema: Value, v: Value) {
    assert_eq!(validate(&schema, &v), Ok(()), "{v} against {schema}");
}

fn bad(schema: Value, v: Value, path: &str, words: &str) {
    match validate(&schema, &v) {
        Ok(()) => panic!("{v} passed {schema}"),
        Err(e) => {
            assert_eq!(e.path, path, "{e}");
            assert!(e.message.contains(words), "{e}");
        }
    }
}

fn rating() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["title", "rating"],
           "properties": {"title": {"type": "string"}, "rating": {"type": "number"}}})
}

#[test]
fn a_number_given_as_a_string_is_the_first_violation() {
    ok(rating(), json!({"title": "Dune", "rating": 4.5}));
    bad(
        rating(),
        json!({"title": "Dune", "rating": "4.5"}),
        "/rating",
        "a string is not of type number",
    );
    bad(
        rating(),
        json!({"title": "Dune"}),
        "",
        "missing required property \"rating\"",
    );
    bad(
        rating(),
        json!({"title": "Dune", "rating": 4, "extra": 1}),
        "",
        "\"extra\" is not allowed",
    );
    bad(
        rating(),
        json!(["Dune"]),
        "",
        "an array is not of type object",
    );
}

#[test]
fn types_unions_enums_and_consts() {
    ok(json!({"type": ["string", "null"]}), json!(null));
    bad(
        json!({"type": ["string", "null"]}),
        json!(3),
        "",
        "not of type string or null",
    );
    ok(json!({"type": "integer"}), json!(3));
    ok(json!({"type": "integer"}), json!(3.0));
    bad(
        json!({"type": "integer"}),
        json!(3.5),
        "",
        "not of type integer",
    );
    ok(json!({"enum": ["a", 1]}), json!(1.0));
    bad(json!({"enum": ["a", "b"]}), json!("c"), "", "not one of");
    bad(
        json!({"const": {"k": [1]}}),
        json!({"k": [2]}),
        "",
        "is not",
    );
    ok(
        json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
        json!(2),
    );
    bad(
        json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
        json!(true),
        "",
        "none of anyOf",
    );
    bad(
        json!({"allOf": [{"type": "number"}, {"minimum": 3}]}),
        json!(2),
        "",
        "below minimum",
    );
}

#[test]
fn arrays_strings_and_numbers_keep_their_bounds() {
    let list = json!({"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2});
    ok(list.clone(), json!(["ab"]));
    bad(list.clone(), json!([]), "", "fewer than minItems 1");
    bad(
        list.clone(),
        json!(["a", "b", "c"]),
        "",
        "more than maxItems 2",
    );
    bad(list, json!(["ab", "abcd"]), "/1", "more than maxLength 3");
    bad(
        json!({"pattern": "^[a-z]+$"}),
        json!("AB"),
        "",
        "does not match the pattern",
    );
    ok(json!({"pattern": "^[a-z]+$"}), json!("ab"));
    bad(
        json!({"exclusiveMaximum": 5}),
        json!(5),
        "",
        "not below exclusiveMaximum",
    );
    bad(
        json!({"multipleOf": 0.5}),
        json!(0.75),
        "",
        "not a multiple of 0.5",
    );
    ok(json!({"multipleOf": 0.1}), json!(0.3));
}

#[test]
fn refs_to_defs_and_the_root_recursion_are_followed_and_bounded() {
    let tree = json!({
        "$defs": {"node": {"type": "object", "required": ["value", "children"], "additionalProperties": false,
                            "properties": {"value": {"type": "integer"},
                                           "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"
    });
    ok(
        tree.clone(),
        json!({"value": 1, "children": [{"value": 2, "children": []}]}),
    );
    bad(
        tree,
        json!({"value": 1, "children": [{"value": "2", "children": []}]}),
        "/children/0/value",
        "not of type integer",
    );
    bad(
        json!({"$ref": "#/$defs/missing"}),
        json!(1),
        "",
        "unresolvable $ref",
    );
    // A schema that refers to itself without consuming the value: bounded, and a violation.
    bad(json!({"$ref": "#"}), json!(1), "", "nests too deeply");
}

#[test]
fn property_names_are_escaped_in_the_path_and_unknown_keywords_ignored() {
    let s = json!({"type": "object", "properties": {"a/b": {"type": "string"}}, "x-custom": 1});
    bad(s, json!({"a/b": 1}), "/a~1b", "not of type string");
    ok(
        json!({"format": "date-time", "description": "anything"}),
        json!("not a date"),
    );
}

#[test]
fn only_a_strict_json_schema_format_is_checked() {
    let body = |f: Value| match json!({"response_format": f}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let s = json!({"type": "object"});
    let strict = body(
        json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": s}}),
    );
    assert_eq!(requested(&strict), Some(&s));
    let loose = body(json!({"type": "json_schema", "json_schema": {"name": "x", "schema": s}}));
    assert_eq!(requested(&loose), None);
    assert_eq!(requested(&body(json!({"type": "json_object"}))), None);
}
