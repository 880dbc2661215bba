//! `POST /v1/messages/count_tokens` (Anthropic SDKs, Claude Code): the route's first
//! Anthropic deployment counts the prompt (its own `count_tokens`, with its key); when the
//! route has none, or it cannot answer, the answer is an estimate (≈ 4 characters per token,
//! tool definitions included), marked `x-router-estimated: true`, never a made-up zero.
//! Counting is free at Anthropic: no usage, spend or breaker report is recorded.

use super::auth;
use super::config_source;
use super::respond::{client_error_response, raw_bytes_response, read_body, request_headers};
use super::secrets::EnvSecrets;
use super::transport::{FetchTransport, WorkerClock};
use super::vars;
use crate::api::count_tokens::{estimate_input_tokens, parse_count_tokens_request};
use crate::api::models::model_not_found;
use crate::api::{ApiError, ChatRequest, ClientFormat};
use crate::config::{ProviderKind, RoutingTable};
use crate::engine::{Clock, ReadAhead, ResponseBody, Transport};
use crate::providers::anthropic::build_count_tokens;
use serde_json::{json, Value};
use worker::{Context, Env, Result};

/// Largest count answer read (it is one small JSON object).
const MAX_ANSWER_BYTES: usize = 16 << 10;

pub async fn handle(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let error = |e: &ApiError| {
        client_error_response(ClientFormat::Anthropic, e, None).map(web_sys::Response::from)
    };
    let now = WorkerClock.now_ms();
    let headers = request_headers(&req.headers());
    let key = match auth::authenticate_headers(&headers, &env, now).await {
        Ok(k) => k,
        Err(e) => return error(&e),
    };
    let limit = vars::number(&env, "MAX_BODY_BYTES", super::chat::DEFAULT_MAX_BODY_BYTES);
    let body = match read_body(&req, limit).await {
        Ok(Some(b)) => b,
        Ok(None) => return error(&ApiError::too_large(limit)),
        Err(e) => {
            let e = ApiError::new(400, "invalid_request_error", "invalid_body", e);
            return error(&e);
        }
    };
    let mut chat = match parse_count_tokens_request(&body) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    chat.anthropic_headers = crate::api::chat::anthropic_headers_of(&headers);
    let table = match config_source::current(&env, &ctx, now).await {
        Ok(l) => l.table,
        Err(msg) => return error(&super::respond::config_unavailable(msg)),
    };
    let visible = |name: &str| key.as_ref().is_none_or(|k| k.allows(name));
    if table.route(&chat.model).is_none() || !visible(&chat.model) {
        return error(&model_not_found(&table, &chat.model, visible));
    }
    if let Some((deployment, n)) = counted_upstream(&table, &chat, &env, now).await {
        let body = json!({ "input_tokens": n }).to_string();
        let extra = [("x-router-deployment", deployment)];
        return raw_bytes_response(200, "application/json", body.as_bytes(), &extra);
    }
    let body = json!({ "input_tokens": estimate_input_tokens(&chat) }).to_string();
    let extra = [("x-router-estimated", "true".to_string())];
    raw_bytes_response(200, "application/json", body.as_bytes(), &extra)
}

/// The count of the first Anthropic deployment of the route that answers it, with its name.
async fn counted_upstream(
    table: &RoutingTable,
    chat: &ChatRequest,
    env: &Env,
    now: u64,
) -> Option<(String, u64)> {
    let route = table.route(&chat.model)?;
    for step in route.chain.steps() {
        let Some(dep) = table.deployment(step.deployment) else {
            continue;
        };
        let Some(ProviderKind::Anthropic(p)) = table.provider_of(dep).map(|p| &p.kind) else {
            continue;
        };
        let Ok(request) = build_count_tokens(p, dep, chat, &EnvSecrets(env.clone())) else {
            continue;
        };
        let ahead = ReadAhead {
            answer_limit: MAX_ANSWER_BYTES,
            error_limit: MAX_ANSWER_BYTES,
            deadline_ms: now + dep.timeouts.attempt_ms,
        };
        let Ok(mut head) = FetchTransport
            .send_reading(request, dep.timeouts.connect_ms, ahead)
            .await
        else {
            continue;
        };
        if head.status != 200 {
            continue;
        }
        let left = (now + dep.timeouts.attempt_ms).saturating_sub(WorkerClock.now_ms());
        let Some(Ok(Some(bytes))) = head.body.read_whole(MAX_ANSWER_BYTES, left).await else {
            continue;
        };
        let n = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("input_tokens").and_then(Value::as_u64));
        if let Some(n) = n {
            return Some((dep.name.clone(), n));
        }
    }
    None
}
