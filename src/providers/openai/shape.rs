//! How much a JSON value holds, read without building it: a stream chunk's delta fields are
//! only asked "is there anything here" (and, for a few, "which string"), so they need no
//! `Value` per chunk, and a string is borrowed from the event unless it has escapes.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

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
        Field::deserialize(d).map(|f| f.shape)
    }
}

/// A value's shape and, when it is a string, the string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub shape: Shape,
    pub text: Option<Cow<'a, str>>,
}

impl Field<'_> {
    fn of(shape: Shape) -> Self {
        Field { shape, text: None }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<'a>(PhantomData<&'a ()>);

fn text_shape(s: &str) -> Shape {
    if s.is_empty() {
        Shape::Empty
    } else {
        Shape::Filled
    }
}

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Null))
    }
    fn visit_none<E>(self) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Field<'a>, D::Error> {
        Field::deserialize(d)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Filled))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Filled))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Filled))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Field<'a>, E> {
        Ok(Field::of(Shape::Filled))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'a>, E> {
        Ok(Field {
            shape: text_shape(s),
            text: Some(Cow::Borrowed(s)),
        })
    }
    fn visit_str<E>(self, s: &str) -> Result<Field<'a>, E> {
        Ok(Field {
            shape: text_shape(s),
            text: Some(Cow::Owned(s.to_string())),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'a>, A::Error> {
        let mut shape = Shape::Empty;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            shape = Shape::Filled;
        }
        Ok(Field::of(shape))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::of(Shape::Filled))
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

    #[test]
    fn a_field_keeps_its_string_borrowed_unless_escaped() {
        #[derive(serde::Deserialize)]
        struct F<'a> {
            #[serde(borrow, default)]
            v: Field<'a>,
        }
        let f = |json: &'static str| serde_json::from_str::<F>(json).unwrap().v;
        assert!(matches!(
            f(r#"{"v":"abc"}"#).text,
            Some(Cow::Borrowed("abc"))
        ));
        let escaped = f(r#"{"v":"a\nb"}"#);
        assert_eq!(escaped.text.as_deref(), Some("a\nb"));
        assert!(matches!(escaped.text, Some(Cow::Owned(_))));
        assert_eq!(
            f(r#"{"v":""}"#),
            Field {
                shape: Shape::Empty,
                text: Some(Cow::Borrowed(""))
            }
        );
        assert_eq!(
            f(r#"{"v":[1]}"#),
            Field {
                shape: Shape::Filled,
                text: None
            }
        );
        assert_eq!(f(r#"{"v":null}"#), Field::default());
        assert_eq!(f(r#"{}"#), Field::default());
    }
}
