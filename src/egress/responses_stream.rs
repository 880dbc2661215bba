//! Pivot chunk stream → Responses API stream events (`event: <type>\ndata: <json>\n\n`, each
//! with its `sequence_number`).
//!
//! State: the sequence number, the answer's head (set by the first chunk, which sends
//! `response.created` and `response.in_progress`), the output items so far (a message's text
//! or a call's arguments, kept because `…done` events and the final `response` repeat them),
//! the finish reason and the usage. One item is open at a time: text after a call, or a call
//! after text, closes the open one (`output_text.done` / `function_call_arguments.done`, then
//! `content_part.done` / `output_item.done`).
//!
//! Invariant: the stream ends with exactly one of `response.completed` (finished),
//! `response.incomplete` (a length or content-filter stop: truncated output never reads as
//! complete) or `response.failed` followed by an `error` event (broken after the commit;
//! the `error` event carries an `error` object too, which is what makes the official SDKs
//! raise). Nothing follows the end.

use super::pivot_chunk::{Chunk, ToolCall};
use super::responses_object::{call_item, message_item, response, text_part, usage, Head, Status};
use crate::resilience::UpstreamError;
use serde_json::{json, Map, Value};

#[derive(Default, Clone)]
pub struct ResponsesStreamEncoder {
    seq: u64,
    head: Option<Head>,
    ended: bool,
    items: Vec<Item>,
    finish: Option<String>,
    usage: Option<Value>,
}

#[derive(Clone)]
struct Item {
    id: String,
    kind: Kind,
    /// The message's text, or the call's arguments.
    text: String,
    open: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Refusal,
}

impl Part {
    fn value(self, text: &str) -> Value {
        match self {
            Part::Text => text_part(text),
            Part::Refusal => json!({"type": "refusal", "refusal": text}),
        }
    }

    /// The delta and done event types, and the done event's field.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Part::Text => (
                "response.output_text.delta",
                "response.output_text.done",
                "text",
            ),
            Part::Refusal => ("response.refusal.delta", "response.refusal.done", "refusal"),
        }
    }
}

#[derive(Clone)]
enum Kind {
    /// A message with one content part.
    Message(Part),
    /// A function call for the pivot's tool-call `index`.
    Call {
        index: u64,
        call_id: String,
        name: String,
    },
}

impl ResponsesStreamEncoder {
    /// One event: its `type` and `sequence_number` are added to `fields`.
    fn emit(&mut self, kind: &str, mut fields: Map<String, Value>, out: &mut Vec<Vec<u8>>) {
        fields.insert("type".into(), Value::String(kind.into()));
        fields.insert("sequence_number".into(), Value::from(self.seq));
        self.seq += 1;
        out.push(format!("event: {kind}\ndata: {}\n\n", Value::Object(fields)).into_bytes());
    }

    fn head(&self) -> Head {
        self.head.clone().unwrap_or_default()
    }

    fn start(&mut self, head: Head, out: &mut Vec<Vec<u8>>) {
        let created = response(
            &head,
            Status::InProgress,
            Vec::new(),
            Value::Null,
            Value::Null,
        );
        self.head = Some(head);
        self.emit(
            "response.created",
            obj(json!({"response": created.clone()})),
            out,
        );
        self.emit(
            "response.in_progress",
            obj(json!({"response": created})),
            out,
        );
    }

    pub fn chunk(&mut self, sse: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        let text = String::from_utf8_lossy(sse);
        let data = text
            .trim()
            .strip_prefix("data:")
            .map(str::trim)
            .unwrap_or("");
        let Ok(chunk) = serde_json::from_str::<Chunk>(data) else {
            return;
        };
        if self.head.is_none() {
            let head = Head::new(chunk.id.as_deref(), chunk.created, chunk.model.as_deref());
            self.start(head, out);
        }
        if let Some(u) = chunk.usage.filter(Value::is_object) {
            self.usage = Some(u);
        }
        // The Responses API has one answer: the first choice.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(t) = choice.delta.content.filter(|s| !s.is_empty()) {
                self.text(Part::Text, &t, out);
            }
            if let Some(t) = choice.delta.refusal.filter(|s| !s.is_empty()) {
                self.text(Part::Refusal, &t, out);
            }
            for call in choice.delta.tool_calls.unwrap_or_default() {
                self.call(call, out);
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(f);
            }
        }
    }

    fn text(&mut self, part: Part, delta: &str, out: &mut Vec<Vec<u8>>) {
        let current = matches!(self.items.last(),
            Some(Item { open: true, kind: Kind::Message(p), .. }) if *p == part);
        if !current {
            self.close(Status::Completed, out);
            let output_index = self.items.len();
            let id = self.head().message_id(output_index);
            let item = message_item(&id, "in_progress", Vec::new());
            self.emit(
                "response.output_item.added",
                obj(json!({"output_index": output_index, "item": item})),
                out,
            );
            self.emit(
                "response.content_part.added",
                obj(json!({"item_id": id, "output_index": output_index,
                "content_index": 0, "part": part.value("")})),
                out,
            );
            self.items.push(Item {
                id,
                kind: Kind::Message(part),
                text: String::new(),
                open: true,
            });
        }
        let output_index = self.items.len() - 1;
        let id = match self.items.last_mut() {
            Some(item) => {
                item.text.push_str(delta);
                item.id.clone()
            }
            None => return,
        };
        let mut fields = obj(json!({"item_id": id, "output_index": output_index,
            "content_index": 0, "delta": delta}));
        if part == Part::Text {
            fields.insert("logprobs".into(), json!([]));
        }
        self.emit(part.names().0, fields, out);
    }

    fn call(&mut self, call: ToolCall, out: &mut Vec<Vec<u8>>) {
        let (name, args) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let current = matches!(self.items.last(),
            Some(Item { open: true, kind: Kind::Call { index, .. }, .. }) if *index == call.index);
        if !current {
            self.close(Status::Completed, out);
            let output_index = self.items.len();
            let call_id = call
                .id
                .unwrap_or_else(|| format!("call_{}_{output_index}", self.head().suffix));
            let name = name.unwrap_or_default();
            let item = call_item(&call_id, &name, "", "in_progress");
            let id = format!("fc_{call_id}");
            self.emit(
                "response.output_item.added",
                obj(json!({"output_index": output_index, "item": item})),
                out,
            );
            self.items.push(Item {
                id,
                kind: Kind::Call {
                    index: call.index,
                    call_id,
                    name,
                },
                text: String::new(),
                open: true,
            });
        }
        let Some(args) = args.filter(|a| !a.is_empty()) else {
            return;
        };
        let output_index = self.items.len() - 1;
        let id = match self.items.last_mut() {
            Some(item) => {
                item.text.push_str(&args);
                item.id.clone()
            }
            None => return,
        };
        self.emit(
            "response.function_call_arguments.delta",
            obj(json!({"item_id": id,
            "output_index": output_index, "delta": args})),
            out,
        );
    }

    /// Closes the open item, if any, with its `…done` events.
    fn close(&mut self, status: Status, out: &mut Vec<Vec<u8>>) {
        let Some(output_index) = self.items.iter().position(|i| i.open) else {
            return;
        };
        let item = match self.items.get_mut(output_index) {
            Some(item) => {
                item.open = false;
                item.clone()
            }
            None => return,
        };
        let base = obj(json!({"item_id": item.id, "output_index": output_index}));
        let done = self.item_value(&item, status.item_status());
        match &item.kind {
            Kind::Message(part) => {
                let (_, done_name, field) = part.names();
                let mut text_done = base.clone();
                text_done.insert("content_index".into(), json!(0));
                text_done.insert(field.into(), json!(item.text));
                if *part == Part::Text {
                    text_done.insert("logprobs".into(), json!([]));
                }
                self.emit(done_name, text_done, out);
                let mut part_done = base;
                part_done.insert("content_index".into(), json!(0));
                part_done.insert("part".into(), part.value(&item.text));
                self.emit("response.content_part.done", part_done, out);
            }
            Kind::Call { name, .. } => {
                let mut args_done = base;
                args_done.insert("name".into(), json!(name));
                args_done.insert("arguments".into(), json!(item.text));
                self.emit("response.function_call_arguments.done", args_done, out);
            }
        }
        self.emit(
            "response.output_item.done",
            obj(json!({"output_index": output_index, "item": done})),
            out,
        );
    }

    fn item_value(&self, item: &Item, status: &str) -> Value {
        match &item.kind {
            Kind::Message(part) => message_item(&item.id, status, vec![part.value(&item.text)]),
            Kind::Call { call_id, name, .. } => call_item(call_id, name, &item.text, status),
        }
    }

    /// Every item so far; open ones (cut short) read as `incomplete`.
    fn output(&self, status: Status) -> Vec<Value> {
        self.items
            .iter()
            .map(|i| {
                self.item_value(
                    i,
                    if i.open {
                        "incomplete"
                    } else {
                        status.item_status()
                    },
                )
            })
            .collect()
    }

    /// The answer is complete: `response.completed`, or `response.incomplete` after a length
    /// or content-filter stop.
    pub fn done(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        if self.head.is_none() {
            self.start(Head::default(), out);
        }
        let status = Status::of_finish(self.finish.as_deref());
        self.close(status, out);
        self.ended = true;
        let usage = usage(self.usage.as_ref());
        let resp = response(
            &self.head(),
            status,
            self.output(status),
            usage,
            Value::Null,
        );
        let kind = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(kind, obj(json!({"response": resp})), out);
    }

    /// The stream broke after it started: `response.failed` (the partial output, marked
    /// incomplete), then an `error` event; nothing after them.
    pub fn error(&mut self, e: &UpstreamError, message: &str, out: &mut Vec<Vec<u8>>) {
        let failure = Failure {
            kind: "upstream_error",
            code: e.class.as_str(),
            response_code: "server_error",
        };
        self.fail(&failure, message, out);
    }

    /// The gateway itself cut the answer (at a key's output reservation): the same end as a
    /// break, `budget_exceeded`.
    pub fn budget_cut(&mut self, message: &str, out: &mut Vec<Vec<u8>>) {
        let failure = Failure {
            kind: "insufficient_quota",
            code: "budget_exceeded",
            response_code: "rate_limit_exceeded",
        };
        self.fail(&failure, message, out);
    }

    fn fail(&mut self, f: &Failure, message: &str, out: &mut Vec<Vec<u8>>) {
        if self.ended {
            return;
        }
        if self.head.is_none() {
            self.start(Head::default(), out);
        }
        self.ended = true;
        let resp = response(
            &self.head(),
            Status::Failed,
            self.output(Status::Failed),
            usage(self.usage.as_ref()),
            json!({"code": f.response_code, "message": message}),
        );
        self.emit("response.failed", obj(json!({"response": resp})), out);
        let error = json!({"type": f.kind, "code": f.code, "message": message, "param": null});
        self.emit(
            "error",
            obj(json!({"code": f.code, "message": message, "param": null, "error": error})),
            out,
        );
    }
}

/// How a failed stream names its failure: the `error` event's type and code, and the code of
/// the failed `response`'s `error` (one of the Responses API's codes).
struct Failure {
    kind: &'static str,
    code: &'static str,
    response_code: &'static str,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
#[path = "responses_stream_tests.rs"]
mod tests;
