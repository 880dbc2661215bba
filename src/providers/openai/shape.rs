//! How much a JSON value holds, read without building it: a stream chunk's delta fields are
//! only asked "is there anything here", so they need no `Value` (and no string copied) per
//! chunk.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Absent or `null`.
    #[default]
    Null,
    /// `""` or `[]`.
    Empty,
    /// Anything else: a non-empty string or array, any object, number or boolean.
    Filled,
}

impl Shape {
    pub fn filled(self) -> bool {
        self == Shape::Filled
    }

    pub fn present(self) -> bool {
        self != Shape::Null
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        Shape::deserialize(d)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Filled)
    }
    fn visit_str<E>(self, s: &str) -> Result<Shape, E> {
        Ok(if s.is_empty() {
            Shape::Empty
        } else {
            Shape::Filled
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::Empty;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            shape = Shape::Filled;
        }
        Ok(shape)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(default)]
        v: Shape,
    }

    fn shape(json: &str) -> Shape {
        serde_json::from_str::<Holder>(json).map(|h| h.v).unwrap()
    }

    #[test]
    fn reads_what_a_value_holds_as_the_tree_would() {
        assert_eq!(shape(r#"{}"#), Shape::Null);
        assert_eq!(shape(r#"{"v":null}"#), Shape::Null);
        assert_eq!(shape(r#"{"v":""}"#), Shape::Empty);
        assert_eq!(shape(r#"{"v":[]}"#), Shape::Empty);
        assert_eq!(shape(r#"{"v":"a\"b"}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":[null]}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":{}}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":{"a":[1,{"b":2}]}}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":0}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":-1.5}"#), Shape::Filled);
        assert_eq!(shape(r#"{"v":false}"#), Shape::Filled);
        assert!(serde_json::from_str::<Holder>(r#"{"v":[1,}"#).is_err());
    }
}
