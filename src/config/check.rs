//! What every section's validation shares: the problem list, bounded millisecond values, names,
//! tag lists and the "known: …" hint. Sections depend on this file, never on each other's.

use super::problems::Problem;

/// Longest timeout or wait a table may set: one hour.
pub(super) const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// The problems found so far; validation goes on after each, so an operator can fix a table
/// in one pass.
#[derive(Debug, Default)]
pub(super) struct Errors(Vec<Problem>);

impl Errors {
    pub(super) fn push(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.0.push(Problem::at(path, msg));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.0
    }

    /// A duration in ms: 1..=`MAX_TIMEOUT_MS`, `fallback` when absent or out of range.
    pub(super) fn ms(&mut self, path: &str, value: Option<u64>, fallback: u64) -> u64 {
        match value {
            Some(0) => {
                self.push(path, "must be at least 1 ms");
                fallback
            }
            Some(v) if v > MAX_TIMEOUT_MS => {
                self.push(path, format!("must be at most {MAX_TIMEOUT_MS} ms"));
                fallback
            }
            Some(v) => v,
            None => fallback,
        }
    }
}

/// Names of providers, deployments, routes and tasks: 1-128 characters of letters, digits
/// and `- _ . : / @`.
pub(super) fn check_name(path: &str, name: &str, errs: &mut Errors) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b));
    if !ok {
        errs.push(
            path,
            "name must be 1-128 characters of letters, digits and - _ . : / @",
        );
    }
}

/// `"a", "b"` (or `none`), for "unknown x (known: …)" messages.
pub(super) fn join_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = keys.map(|k| format!("{k:?}")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A list of tags: each 1-64 letters, digits or `- _ . :`, no repeats.
pub(super) fn tag_list(path: &str, raw: &[String], errs: &mut Errors) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for (i, tag) in raw.iter().enumerate() {
        let ok = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            errs.push(
                &format!("{path}[{i}]"),
                "a tag is 1-64 characters of letters, digits and - _ . :",
            );
        } else if tags.contains(tag) {
            errs.push(
                &format!("{path}[{i}]"),
                format!("tag {tag:?} appears twice"),
            );
        } else {
            tags.push(tag.clone());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_their_path_and_order() {
        let mut errs = Errors::default();
        assert!(errs.is_empty());
        assert_eq!(errs.ms("a.ms", Some(0), 7), 7);
        assert_eq!(errs.ms("b.ms", Some(MAX_TIMEOUT_MS + 1), 7), 7);
        assert_eq!(errs.ms("c.ms", Some(5), 7), 5);
        assert_eq!(errs.ms("d.ms", None, 7), 7);
        check_name("routes.bad name", "bad name", &mut errs);
        let p = errs.into_problems();
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["a.ms", "b.ms", "routes.bad name"]);
        assert_eq!(p[0].message, "must be at least 1 ms");
    }

    #[test]
    fn tags_are_checked_and_deduplicated() {
        let mut errs = Errors::default();
        let raw = [
            "eu".to_string(),
            "eu".into(),
            "no space".into(),
            "gpu".into(),
        ];
        assert_eq!(tag_list("t", &raw, &mut errs), ["eu", "gpu"]);
        let p = errs.into_problems();
        assert_eq!(p[0], Problem::at("t[1]", "tag \"eu\" appears twice"));
        assert_eq!(p[1].path, "t[2]");
    }
}
