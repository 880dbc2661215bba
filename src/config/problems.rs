//! Validation errors as the admin API reports them: each with the JSON path it concerns.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Dotted JSON path (`routes.chat.chain[1]`); empty for a JSON syntax error.
    pub path: String,
    pub message: String,
}

const SYNTAX_PREFIX: &str = "invalid routing table JSON: ";

/// Splits `parse_table`'s "<path>: <message>" strings.
pub fn problems(errors: &[String]) -> Vec<Problem> {
    errors
        .iter()
        .map(|e| match e.strip_prefix(SYNTAX_PREFIX) {
            Some(rest) => Problem {
                path: String::new(),
                message: format!("invalid JSON: {rest}"),
            },
            None => match e.split_once(": ") {
                Some((path, message)) if !path.contains(' ') => Problem {
                    path: path.to_string(),
                    message: message.to_string(),
                },
                _ => Problem {
                    path: String::new(),
                    message: e.clone(),
                },
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_table;

    fn problems_of(text: &str) -> Vec<Problem> {
        match parse_table(text) {
            Ok(_) => Vec::new(),
            Err(e) => problems(&e),
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
}
