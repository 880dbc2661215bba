//! Validation problems as values: each names the JSON path it concerns. Validation collects
//! them as they are found; text is made only at the edge (`Display`, for logs and
//! `parse_table`), and the admin API serializes them as they are (`{"path", "message"}`).

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted JSON path (`routes.chat.chain[1]`); empty for a JSON syntax error.
    pub path: String,
    pub message: String,
    /// The text is not one JSON document: `message` is `invalid JSON: <detail>`.
    #[serde(skip)]
    syntax: bool,
}

/// How the admin API begins the message of a syntax error.
const SYNTAX: &str = "invalid JSON: ";

impl Problem {
    /// A problem of the value at `path`.
    pub fn at(path: impl Into<String>, message: impl fmt::Display) -> Problem {
        Problem {
            path: path.into(),
            message: message.to_string(),
            syntax: false,
        }
    }

    /// The text is not one JSON document (`detail` says where).
    pub fn syntax(detail: impl fmt::Display) -> Problem {
        Problem {
            path: String::new(),
            message: format!("{SYNTAX}{detail}"),
            syntax: true,
        }
    }
}

/// `<path>: <message>`, or `invalid routing table JSON: <detail>` for a syntax error. (The
/// path may be empty: a top-level field named `""`.)
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.syntax {
            let detail = self.message.strip_prefix(SYNTAX).unwrap_or(&self.message);
            write!(f, "invalid routing table JSON: {detail}")
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn problems_of(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    #[test]
    fn every_validation_error_gets_its_path() {
        let text = r#"{"version": 1,
            "providers": {"m": {"kind": "mock"}},
            "deployments": {"d": {"provider": "nope", "model": "", "context_window": 1000}},
            "routes": {"chat": {"chain": ["d", "gone"]}}}"#;
        let p = problems_of(text);
        assert_eq!(p.len(), 2, "{p:?}");
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"deployments.d.provider"), "{paths:?}");
        assert!(paths.contains(&"routes.chat.chain[1]"), "{paths:?}");
        assert!(p.iter().all(|p| !p.message.is_empty()));
    }

    #[test]
    fn a_syntax_error_has_no_path_and_says_where() {
        let p = problems_of("{\"version\": 1,\n  \"routes\": }");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "");
        assert!(p[0].message.contains("line 2"), "{}", p[0].message);
    }

    #[test]
    fn a_type_error_names_the_field() {
        let p = problems_of(
            r#"{"version": 1, "providers": {}, "deployments": {}, "routes": {"chat": {"chain": 5}}}"#,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "routes.chat.chain");
    }

    #[test]
    fn a_path_with_spaces_or_colons_stays_whole() {
        // Names are checked, but the problem about a bad name is at a path holding it: the
        // old text form was split at the first ": ", which cut such a path apart.
        let text = r#"{"version": 1, "providers": {"my provider: x": {"kind": "mock"}},
            "deployments": {"d": {"provider": "my provider: x", "model": "m", "context_window": 1}},
            "routes": {"chat": {"chain": ["d"]}}}"#;
        let p = problems_of(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "providers.my provider: x");
        assert!(p[0].message.starts_with("name must be"), "{p:?}");
    }

    #[test]
    fn an_unknown_top_level_field_named_empty_is_not_a_syntax_error() {
        let p = problems_of(r#"{"": 1}"#);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "");
        assert!(p[0].message.starts_with("unknown field ``"), "{p:?}");
        assert!(p[0].to_string().starts_with(": unknown field ``"), "{p:?}");
    }

    #[test]
    fn the_text_form_is_path_colon_message() {
        assert_eq!(
            Problem::at("routes.a.chain", "must list at least one deployment").to_string(),
            "routes.a.chain: must list at least one deployment"
        );
        let syntax = Problem::syntax("EOF while parsing at line 1 column 1");
        assert_eq!(
            syntax.message,
            "invalid JSON: EOF while parsing at line 1 column 1"
        );
        assert_eq!(
            syntax.to_string(),
            "invalid routing table JSON: EOF while parsing at line 1 column 1"
        );
    }
}
