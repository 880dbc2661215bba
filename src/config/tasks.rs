//! Validation of the top-level `tasks` block: task names map to existing routes, rules name
//! existing tasks, regular expressions compile, header names are stored lower-case.

use super::check::{check_name, join_keys, Errors};
use super::raw::{RawRoute, RawTasks, RawWhen};
use super::types::{Pattern, Route, TaskRule, Tasks, When};
use std::collections::BTreeMap;

/// Most rules a table may hold (each request may evaluate all of them).
pub const MAX_RULES: usize = 100;

pub(super) fn tasks(
    raw: &RawTasks,
    raw_routes: &BTreeMap<String, RawRoute>,
    routes: &BTreeMap<String, Route>,
    errs: &mut Errors,
) -> Tasks {
    let mut task_routes = BTreeMap::new();
    for (task, route) in &raw.routes {
        let path = format!("tasks.routes.{task}");
        check_name(&path, task, errs);
        if routes.contains_key(route) {
            task_routes.insert(task.clone(), route.clone());
        } else if !raw_routes.contains_key(route) {
            let known = join_keys(raw_routes.keys());
            errs.push(&path, format!("unknown route {route:?} (known: {known})"));
        } // else: the route itself is invalid and reported under routes
    }
    let known_task = |path: &str, task: &str, errs: &mut Errors| {
        let ok = raw.routes.contains_key(task);
        if !ok {
            let known = join_keys(raw.routes.keys());
            errs.push(path, format!("unknown task {task:?} (known: {known})"));
        }
        ok
    };
    let default = raw
        .default
        .as_ref()
        .filter(|d| known_task("tasks.default", d, errs))
        .cloned();

    if raw.rules.len() > MAX_RULES {
        errs.push("tasks.rules", format!("at most {MAX_RULES} rules"));
    }
    let mut rules: Vec<TaskRule> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        let path = format!("tasks.rules[{i}]");
        if r.name.trim().is_empty() || r.name.len() > 128 {
            errs.push(&format!("{path}.name"), "must be 1-128 characters");
        } else if names.contains(&r.name.as_str()) {
            errs.push(
                &format!("{path}.name"),
                format!("rule {:?} appears twice", r.name),
            );
        }
        names.push(&r.name);
        let task_ok = known_task(&format!("{path}.task"), &r.task, errs);
        let when = when(&format!("{path}.when"), &r.when, errs);
        if task_ok {
            rules.push(TaskRule {
                name: r.name.clone(),
                when,
                task: r.task.clone(),
            });
        }
    }
    Tasks {
        default,
        routes: task_routes,
        rules,
    }
}

fn when(path: &str, raw: &RawWhen, errs: &mut Errors) -> When {
    if let (Some(min), Some(max)) = (raw.min_prompt_tokens, raw.max_prompt_tokens) {
        if min > max {
            errs.push(
                &format!("{path}.max_prompt_tokens"),
                "must not be below min_prompt_tokens",
            );
        }
    }
    let last_user_matches = raw.last_user_matches.as_deref().and_then(|src| {
        Pattern::new(src)
            .map_err(|e| errs.push(&format!("{path}.last_user_matches"), e))
            .ok()
    });
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &raw.header {
        let hpath = format!("{path}.header.{name}");
        let lower = name.to_ascii_lowercase();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            errs.push(&hpath, "not a valid header name");
        } else if headers.iter().any(|(n, _)| *n == lower) {
            errs.push(&hpath, "header named twice (names are case-insensitive)");
        } else if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            errs.push(&hpath, "header value must not contain CR, LF or NUL");
        } else {
            headers.push((lower, value.trim().to_string()));
        }
    }
    if raw.model.as_ref().is_some_and(Vec::is_empty) {
        errs.push(
            &format!("{path}.model"),
            "must list at least one model name (omit to match any)",
        );
    }
    if let Some(p) = &raw.path {
        if !p.starts_with('/') {
            errs.push(&format!("{path}.path"), "must start with /");
        }
    }
    When {
        min_prompt_tokens: raw.min_prompt_tokens,
        max_prompt_tokens: raw.max_prompt_tokens,
        images: raw.images,
        tools: raw.tools,
        json: raw.json,
        last_user_matches,
        headers,
        models: raw.model.clone(),
        path: raw.path.clone(),
    }
}
