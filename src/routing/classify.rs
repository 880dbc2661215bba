//! Task classification: which route serves a request. Pure: the caller gathers the request's
//! facts (model, path, headers, body-derived flags) and gets back a route name and why.
//!
//! Precedence: an `x-task` header, then `metadata.task` in the body, then the first matching
//! rule, then the requested model when it names a route, then `tasks.default`, and finally the
//! requested model as is (today's behaviour, so tables without `tasks` route exactly as before
//! and an explicit route name is never overridden by the default task).

use crate::api::ChatRequest;
use crate::config::{RoutingTable, Tasks, When};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::fmt;

/// Request header naming the task explicitly.
pub const TASK_HEADER: &str = "x-task";
/// Bytes of the last user message that `last_user_matches` rules search (bounds CPU per request).
pub const MAX_MATCHED_BYTES: usize = 32 * 1024;

/// What classification looks at.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    /// The requested model (a route name, or a placeholder such as `auto`).
    pub model: &'a str,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: &'a str,
    /// Request headers with lower-case names.
    pub headers: &'a [(String, String)],
    /// `metadata.task` from the body, when it is a string.
    pub metadata_task: Option<&'a str>,
    pub prompt_tokens: u64,
    pub tools: bool,
    pub images: bool,
    pub json: bool,
    /// Text of the last user message (at most `MAX_MATCHED_BYTES`).
    pub last_user: Cow<'a, str>,
}

impl<'a> RequestFacts<'a> {
    /// Facts of a parsed chat request: prompt tokens ≈ characters / 4 (rounded up), needs from
    /// the body, `metadata.task` when it is a string, and the last user message's text.
    pub fn from_request(
        req: &'a ChatRequest,
        path: &'a str,
        headers: &'a [(String, String)],
    ) -> RequestFacts<'a> {
        let needs = req.needs();
        RequestFacts {
            model: &req.model,
            path,
            headers,
            metadata_task: req
                .body
                .get("metadata")
                .and_then(|m| m.get("task"))
                .and_then(Value::as_str),
            prompt_tokens: crate::usage::estimate::tokens(req.prompt_chars),
            tools: needs.tools,
            images: needs.vision,
            json: needs.json,
            last_user: truncate(last_user(&req.body)),
        }
    }

    /// The value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// Why a route was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `x-task` header.
    Header,
    /// `metadata.task` in the body.
    Metadata,
    /// The rule with this name matched.
    Rule(String),
    /// `tasks.default` (the request named no route).
    Default,
    /// The requested model is the route.
    Model,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Header => f.write_str("header"),
            Source::Metadata => f.write_str("metadata"),
            Source::Rule(name) => write!(f, "rule:{name}"),
            Source::Default => f.write_str("default"),
            Source::Model => f.write_str("model"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The task, unless the route came straight from the requested model.
    pub task: Option<String>,
    /// The route to serve the request on. With `Source::Model` it may name no route
    /// (the caller answers "model not found" as before).
    pub route: String,
    pub source: Source,
}

impl Classification {
    pub fn to_json(&self) -> Value {
        json!({"task": self.task, "route": self.route, "source": self.source.to_string()})
    }
}

/// Picks the route for a request. Err: the header or metadata named a task the table lacks.
pub fn classify(table: &RoutingTable, facts: &RequestFacts) -> Result<Classification, String> {
    let explicit = [
        (facts.header(TASK_HEADER), Source::Header),
        (facts.metadata_task.map(str::trim), Source::Metadata),
    ];
    for (task, source) in explicit {
        let Some(task) = task.filter(|t| !t.is_empty()) else {
            continue;
        };
        let tasks = table.tasks.as_ref();
        let Some(route) = tasks.and_then(|t| t.route_of(task)) else {
            return Err(unknown_task(task, tasks, &source));
        };
        return Ok(Classification {
            task: Some(task.to_string()),
            route: route.to_string(),
            source,
        });
    }
    let by_model = || Classification {
        task: None,
        route: facts.model.to_string(),
        source: Source::Model,
    };
    let Some(tasks) = &table.tasks else {
        return Ok(by_model());
    };
    for rule in &tasks.rules {
        if let (true, Some(route)) = (matches(&rule.when, facts), tasks.route_of(&rule.task)) {
            return Ok(Classification {
                task: Some(rule.task.clone()),
                route: route.to_string(),
                source: Source::Rule(rule.name.clone()),
            });
        }
    }
    if table.route(facts.model).is_some() {
        return Ok(by_model());
    }
    match tasks
        .default
        .as_deref()
        .and_then(|d| Some((d, tasks.route_of(d)?)))
    {
        Some((task, route)) => Ok(Classification {
            task: Some(task.to_string()),
            route: route.to_string(),
            source: Source::Default,
        }),
        None => Ok(by_model()),
    }
}

/// Whether every condition of `when` holds (cheap checks first, the regex last).
pub fn matches(when: &When, facts: &RequestFacts) -> bool {
    let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
    when.min_prompt_tokens
        .is_none_or(|min| facts.prompt_tokens >= min)
        && when
            .max_prompt_tokens
            .is_none_or(|max| facts.prompt_tokens <= max)
        && flag(when.images, facts.images)
        && flag(when.tools, facts.tools)
        && flag(when.json, facts.json)
        && when.path.as_deref().is_none_or(|p| p == facts.path)
        && when
            .models
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == facts.model))
        && when
            .headers
            .iter()
            .all(|(name, value)| facts.header(name) == Some(value.as_str()))
        && when
            .last_user_matches
            .as_ref()
            .is_none_or(|p| p.is_match(&facts.last_user))
}

fn unknown_task(task: &str, tasks: Option<&Tasks>, source: &Source) -> String {
    let from = match source {
        Source::Header => format!("the {TASK_HEADER} header"),
        _ => "metadata.task".to_string(),
    };
    match tasks.filter(|t| !t.routes.is_empty()) {
        None => format!("{from} names task {task:?}, but no tasks are configured"),
        Some(t) => {
            let known: Vec<String> = t.routes.keys().map(|k| format!("{k:?}")).collect();
            format!(
                "{from} names unknown task {task:?} (known: {})",
                known.join(", ")
            )
        }
    }
}

/// The last user message's text, borrowed when it is a plain string.
fn last_user(body: &serde_json::Map<String, Value>) -> Cow<'_, str> {
    let Some(Value::Array(messages)) = body.get("messages") else {
        return Cow::Borrowed("");
    };
    let user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    match user.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Array(parts)) => Cow::Owned(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => Cow::Borrowed(""),
    }
}

/// The first `MAX_MATCHED_BYTES` of `text`, cut at a character boundary.
fn truncate(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.len() <= MAX_MATCHED_BYTES {
        return text;
    }
    let mut end = MAX_MATCHED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(..end).unwrap_or(s)),
        Cow::Owned(mut s) => {
            s.truncate(end);
            Cow::Owned(s)
        }
    }
}
