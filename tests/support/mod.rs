//! Test doubles for the engine's ports: a manual clock and a transport that plays scripted
//! upstream behaviour per URL, recording every request it receives.
#![allow(dead_code)]

use edge_router::engine::{
    Clock, ReadAhead, ResponseBody, ResponseHead, Transport, TransportError,
};
use edge_router::providers::{HttpRequest, Secrets};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

#[derive(Clone, Default)]
pub struct ManualClock(pub Rc<Cell<u64>>);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        ManualClock(Rc::new(Cell::new(ms)))
    }
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
    async fn sleep(&self, ms: u64) {
        self.advance(ms);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum End {
    Close,
    Reset,
    Hang,
}

#[derive(Clone, Debug)]
pub enum Step {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        headers_delay: u64,
        chunks: Vec<(u64, Vec<u8>)>,
        end: End,
    },
    ConnectError,
    Hang,
}

impl Step {
    pub fn json(status: u16, body: &str) -> Step {
        Step::Respond {
            status,
            headers: vec![],
            headers_delay: 0,
            chunks: vec![(0, body.as_bytes().to_vec())],
            end: End::Close,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Step {
        if let Step::Respond { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }
    pub fn sse(chunks: Vec<(u64, String)>, end: End) -> Step {
        Step::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            headers_delay: 0,
            chunks: chunks
                .into_iter()
                .map(|(d, s)| (d, s.into_bytes()))
                .collect(),
            end,
        }
    }
}

#[derive(Clone, Default)]
pub struct Script {
    steps: Rc<RefCell<HashMap<String, VecDeque<Step>>>>,
    pub requests: Rc<RefCell<Vec<HttpRequest>>>,
    /// What the engine said of each request's body (`send_reading`), or None (`send`).
    pub read_aheads: Rc<RefCell<Vec<Option<ReadAhead>>>>,
    clock: ManualClock,
}

impl Script {
    pub fn new(clock: &ManualClock) -> Self {
        Script {
            clock: clock.clone(),
            ..Default::default()
        }
    }
    /// Steps for requests to `base_url`; the last step repeats.
    pub fn on(&self, base_url: &str, steps: Vec<Step>) {
        self.steps
            .borrow_mut()
            .insert(format!("{base_url}/chat/completions"), steps.into());
    }
    /// Steps for requests to exactly `url` (any endpoint); the last step repeats.
    pub fn on_url(&self, url: &str, steps: Vec<Step>) {
        self.steps
            .borrow_mut()
            .insert(url.to_string(), steps.into());
    }
    pub fn hits(&self, base_url: &str) -> usize {
        let url = format!("{base_url}/chat/completions");
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.url == url)
            .count()
    }
    pub fn bodies(&self, base_url: &str) -> Vec<serde_json::Value> {
        let url = format!("{base_url}/chat/completions");
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.url == url)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

pub struct ScriptBody {
    chunks: VecDeque<(u64, Vec<u8>)>,
    end: End,
    clock: ManualClock,
}

impl ResponseBody for ScriptBody {
    async fn next_chunk(&mut self, timeout_ms: u64) -> Result<Option<Vec<u8>>, TransportError> {
        if let Some((delay, _)) = self.chunks.front_mut() {
            if *delay > timeout_ms {
                *delay -= timeout_ms;
                self.clock.advance(timeout_ms);
                return Err(TransportError::Timeout);
            }
            self.clock.advance(*delay);
            return Ok(self.chunks.pop_front().map(|(_, b)| b));
        }
        match self.end {
            End::Close => Ok(None),
            End::Reset => Err(TransportError::Reset("connection reset by peer".into())),
            End::Hang => {
                self.clock.advance(timeout_ms);
                Err(TransportError::Timeout)
            }
        }
    }
}

impl Transport for Script {
    type Body = ScriptBody;

    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<ScriptBody>, TransportError> {
        self.read_aheads.borrow_mut().push(None);
        self.respond(req, timeout_ms)
    }

    async fn send_reading(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
        ahead: ReadAhead,
    ) -> Result<ResponseHead<ScriptBody>, TransportError> {
        self.read_aheads.borrow_mut().push(Some(ahead));
        self.respond(req, timeout_ms)
    }
}

impl Script {
    fn respond(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<ResponseHead<ScriptBody>, TransportError> {
        let url = req.url.clone();
        self.requests.borrow_mut().push(req);
        let step = {
            let mut steps = self.steps.borrow_mut();
            let queue = steps
                .get_mut(&url)
                .unwrap_or_else(|| panic!("no script for {url}"));
            if queue.len() > 1 {
                queue.pop_front().unwrap()
            } else {
                queue.front().cloned().unwrap()
            }
        };
        match step {
            Step::ConnectError => Err(TransportError::Connect("connection refused".into())),
            Step::Hang => {
                self.clock.advance(timeout_ms);
                Err(TransportError::Timeout)
            }
            Step::Respond {
                status,
                headers,
                headers_delay,
                chunks,
                end,
            } => {
                if headers_delay > timeout_ms {
                    self.clock.advance(timeout_ms);
                    return Err(TransportError::Timeout);
                }
                self.clock.advance(headers_delay);
                Ok(ResponseHead {
                    status,
                    headers,
                    body: ScriptBody {
                        chunks: chunks.into(),
                        end,
                        clock: self.clock.clone(),
                    },
                })
            }
        }
    }
}

pub struct NoSecrets;
impl Secrets for NoSecrets {
    fn get(&self, name: &str) -> Option<String> {
        (name == "TEST_KEY").then(|| "sk-test-secret".to_string())
    }
}

// ---- OpenAI wire-format builders ----

pub fn chunk(content: &str) -> String {
    format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}],\"usage\":null}}\n\n", serde_json::Value::String(content.into()))
}
pub fn role_chunk() -> String {
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n".into()
}
pub fn finish_chunk() -> String {
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".into()
}
pub fn usage_chunk(p: u64, c: u64) -> String {
    format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"up-model\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{}}}}}\n\n", p + c)
}
pub const DONE: &str = "data: [DONE]\n\n";

/// A complete, well-formed stream of `words`, each after `delay` ms.
pub fn full_stream(words: &[&str], delay: u64) -> Step {
    let mut chunks = vec![(0, role_chunk())];
    for w in words {
        chunks.push((delay, chunk(w)));
    }
    chunks.push((0, finish_chunk()));
    chunks.push((0, usage_chunk(10, words.len() as u64)));
    chunks.push((0, DONE.to_string()));
    Step::sse(chunks, End::Close)
}

pub fn completion(text: &str) -> String {
    serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
    .to_string()
}

pub fn openai_error(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        .to_string()
}
