//! Differences between two routing tables, for the admin API and the dashboard's review step:
//! a structural list of changed JSON paths and a line diff of both sides pretty-printed with
//! sorted keys (so that key order and whitespace never show up as changes).

use serde::Serialize;
use serde_json::Value;
use similar::{capture_diff_slices, Algorithm, DiffTag};

/// Lines per side above which no line diff is computed (Myers' cost grows with size times
/// the number of differences).
pub const MAX_DIFF_LINES: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `" "` unchanged, `"+"` added, `"-"` removed.
    pub op: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub lines: Vec<Line>,
}

/// Compares two JSON documents. `Err` when either side is too large for a line diff.
pub fn diff(before: &Value, after: &Value) -> Result<Diff, String> {
    let mut changes = Vec::new();
    walk("", before, after, &mut changes);
    let old = pretty(before);
    let new = pretty(after);
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    if old.len().max(new.len()) > MAX_DIFF_LINES {
        return Err(format!(
            "tables too large to diff (more than {MAX_DIFF_LINES} lines when pretty-printed)"
        ));
    }
    Ok(Diff {
        changes,
        lines: line_diff(&old, &new),
    })
}

/// Pretty-printed with sorted keys (serde_json's map is ordered by key).
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn line_diff(old: &[&str], new: &[&str]) -> Vec<Line> {
    let mut out = Vec::new();
    let line = |op, s: &&str| Line {
        op,
        text: (*s).to_string(),
    };
    for op in capture_diff_slices(Algorithm::Myers, old, new) {
        let (tag, o, n) = op.as_tag_tuple();
        let removed = old.get(o).unwrap_or_default();
        let added = new.get(n).unwrap_or_default();
        match tag {
            DiffTag::Equal => out.extend(removed.iter().map(|s| line(" ", s))),
            DiffTag::Delete => out.extend(removed.iter().map(|s| line("-", s))),
            DiffTag::Insert => out.extend(added.iter().map(|s| line("+", s))),
            DiffTag::Replace => {
                out.extend(removed.iter().map(|s| line("-", s)));
                out.extend(added.iter().map(|s| line("+", s)));
            }
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let p = join(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (Some(x), None) => out.push(removed(p, x)),
                    (None, Some(y)) => out.push(added(p, y)),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (Some(x), None) => out.push(removed(p, x)),
                    (None, Some(y)) => out.push(added(p, y)),
                    (None, None) => {}
                }
            }
        }
        (x, y) if x == y => {}
        (x, y) => out.push(Change {
            path: path.to_string(),
            kind: ChangeKind::Changed,
            before: Some(x.clone()),
            after: Some(y.clone()),
        }),
    }
}

fn added(path: String, v: &Value) -> Change {
    Change {
        path,
        kind: ChangeKind::Added,
        before: None,
        after: Some(v.clone()),
    }
}

fn removed(path: String, v: &Value) -> Change {
    Change {
        path,
        kind: ChangeKind::Removed,
        before: Some(v.clone()),
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(d: &Diff) -> Vec<(String, ChangeKind)> {
        d.changes.iter().map(|c| (c.path.clone(), c.kind)).collect()
    }

    #[test]
    fn names_every_changed_added_and_removed_path() {
        let a = json!({"routes": {"chat": {"chain": ["a", "b"]}, "old": {"chain": ["a"]}},
                       "defaults": {"retry": {"max_attempts": 2}}});
        let b = json!({"routes": {"chat": {"chain": ["a", "c", "d"]}, "new": {"chain": ["c"]}},
                       "defaults": {"retry": {"max_attempts": 3}}});
        let d = diff(&a, &b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            paths(&d),
            vec![
                ("defaults.retry.max_attempts".into(), ChangeKind::Changed),
                ("routes.chat.chain[1]".into(), ChangeKind::Changed),
                ("routes.chat.chain[2]".into(), ChangeKind::Added),
                ("routes.new".into(), ChangeKind::Added),
                ("routes.old".into(), ChangeKind::Removed),
            ]
        );
        let c = &d.changes[1];
        assert_eq!(
            (c.before.clone(), c.after.clone()),
            (Some(json!("b")), Some(json!("c")))
        );
    }

    #[test]
    fn key_order_and_whitespace_are_not_changes() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1,2], "x": null}}"#).unwrap_or_default();
        let b: Value =
            serde_json::from_str("{\"a\":{\"x\":null,\n\"y\":[1, 2]},\"b\":1}").unwrap_or_default();
        let d = diff(&a, &b).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.changes.is_empty());
        assert!(d.lines.iter().all(|l| l.op == " "));
        assert!(!d.lines.is_empty());
    }

    #[test]
    fn line_diff_keeps_context_and_marks_only_the_changed_lines() {
        let a = json!({"routes": {"chat": {"chain": ["a", "b"], "strategy": "ordered"}}});
        let b = json!({"routes": {"chat": {"chain": ["a", "c"], "strategy": "ordered"}}});
        let d = diff(&a, &b).unwrap_or_else(|e| panic!("{e}"));
        let marked: Vec<(&str, &str)> = d
            .lines
            .iter()
            .filter(|l| l.op != " ")
            .map(|l| (l.op, l.text.trim()))
            .collect();
        assert_eq!(marked, vec![("-", "\"b\""), ("+", "\"c\"")]);
        // Every line of both sides is present: old = context + removed, new = context + added.
        let old_len = d.lines.iter().filter(|l| l.op != "+").count();
        assert_eq!(old_len, pretty(&a).lines().count());
    }

    #[test]
    fn a_type_change_is_one_change_at_that_path() {
        let d = diff(&json!({"x": {"a": 1}}), &json!({"x": [1]})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(paths(&d), vec![("x".into(), ChangeKind::Changed)]);
    }

    #[test]
    fn oversized_tables_are_refused_not_diffed_slowly() {
        let big: Vec<u32> = (0..(MAX_DIFF_LINES as u32 + 10)).collect();
        assert!(diff(&json!(big), &json!([])).is_err());
    }
}
