//! POST /v1/chat/completions and /v1/messages: check the caller's key, read and validate the
//! body, pick the route, admit the request against the key's limits, run the engine, and
//! turn its outcome into a response (JSON, or an SSE stream pulled from the engine).

use super::auth;
use super::background::Background;
use super::config_source;
use super::finish::Finish;
use super::health::DoHealth;
use super::respond::{
    client_error_response, config_unavailable, raw_bytes_response, read_body, request_headers,
};
use super::routing;
use super::secrets::{redactor, EnvSecrets};
use super::stream_out;
use super::transport::{FetchTransport, WorkerClock};
use crate::api::anthropic::parse_messages_request;
use crate::api::{parse_chat_request, ApiError, ClientFormat};
use crate::egress::completion_for_client;
use crate::engine::{Clock, Engine, Meta, Outcome, RequestContext};
use crate::keys::{cap_output, estimate};
use crate::report::{log_line, response_headers};
use std::rc::Rc;
use worker::{console_log, Context, Env, Result};

pub(super) const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// Serves `/v1/chat/completions` (OpenAI clients) and `/v1/messages` (Anthropic clients).
/// Works on the runtime's own request and response objects (no `worker::Request`, which
/// reads `request.cf` up front, and no header-by-header copies: see `http.js`).
pub async fn handle(
    req: web_sys::Request,
    path: String,
    env: Env,
    ctx: Context,
    client: ClientFormat,
) -> Result<web_sys::Response> {
    let error_response =
        |e: &ApiError, meta| client_error_response(client, e, meta).map(web_sys::Response::from);
    let ctx: Rc<dyn Background> = Rc::new(ctx);
    let clock = WorkerClock;
    let started = clock.now_ms();
    let headers = request_headers(&req.headers());
    let key = match auth::authenticate_headers(&headers, &env, started).await {
        Ok(k) => k,
        Err(e) => return error_response(&e, None),
    };
    let limit = super::vars::number(&env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES);
    let body = match read_body(&req, limit).await {
        Ok(Some(b)) => b,
        Ok(None) => return error_response(&ApiError::too_large(limit), None),
        Err(e) => {
            let e = ApiError::new(
                400,
                "invalid_request_error",
                "invalid_body",
                format!("reading the body failed: {e}"),
            );
            return error_response(&e, None);
        }
    };
    let parsed = match client {
        ClientFormat::OpenAi => parse_chat_request(&body),
        ClientFormat::Anthropic => parse_messages_request(&body),
    };
    let mut chat = match parsed {
        Ok(c) => c,
        Err(e) => return error_response(&e, None),
    };
    if client == ClientFormat::Anthropic {
        chat.anthropic_headers = crate::api::chat::anthropic_headers_of(&headers);
    }
    let loaded = match config_source::current(&env, ctx.as_ref(), clock.now_ms()).await {
        Ok(l) => l,
        Err(msg) => return error_response(&config_unavailable(msg), None),
    };
    let table = loaded.table.clone();
    let routed = match routing::route_request(
        &table,
        &chat,
        &path,
        &headers,
        random_u64(),
        clock.now_ms(),
        key.as_ref(),
    ) {
        Ok(r) => r,
        Err(e) => return error_response(&e, None),
    };
    let Some(route) = table.route(&routed.class.route) else {
        return error_response(&ApiError::not_found("route vanished"), None);
    };
    if let Some(k) = key.as_ref().filter(|k| !k.allows(&route.name)) {
        let mut e = ApiError::new(
            403,
            "permission_error",
            "model_not_allowed",
            format!(
                "Gateway key \"{}\" may not use model `{}`.",
                k.name, route.name
            ),
        );
        e.param = Some("model".into());
        return error_response(&e, None);
    }
    // A key with a token or spend limit: the answer may not cost more than is reserved.
    if let Some(k) = key.as_ref() {
        cap_output(&mut chat, k, &table);
    }
    let request_id = request_id();
    let mut admitted = None;
    let mut waited_before = 0;
    if let Some(k) = key.as_ref() {
        waited_before = 1;
        match auth::admit(&env, k, &request_id, estimate(&chat, route, &table)).await {
            Ok(a) => admitted = Some(a),
            Err((e, headroom)) => {
                let meta = Meta {
                    request_id,
                    route: route.name.clone(),
                    started_ms: started,
                    key_name: Some(k.name.clone()),
                    extra_headers: auth::ratelimit_headers(&headroom),
                    state_calls: (1, 0),
                    status: e.status,
                    error: Some(format!("{}: {}", e.code, e.message)),
                    ..Meta::default()
                };
                let now = clock.now_ms();
                console_log!("{}", log_line(&meta, now));
                return error_response(&e, Some((&meta, now)));
            }
        }
    }
    let mut finish = Finish {
        env: env.clone(),
        ctx: Rc::clone(&ctx),
        health: DoHealth::new(env.clone(), Rc::clone(&ctx), table.clone()),
        key,
        admitted,
        waited_before,
        routed,
    };
    let transport = FetchTransport;
    let secrets = EnvSecrets(&env);
    let redactor = redactor(&table, &env);
    let engine = Engine {
        table: &table,
        transport: &transport,
        clock: &clock,
        secrets: &secrets,
        health: &finish.health,
        redactor: &redactor,
    };
    let ctx_req = RequestContext {
        order: Some(finish.routed.plan.order.clone()),
        request_id,
        started_ms: started,
        jitter_seed: random_u64(),
    };
    let chat = Rc::new(chat);
    let outcome = engine.run(route, &chat, ctx_req).await;
    match outcome {
        Outcome::Complete {
            body,
            client_ready,
            mut meta,
        } => {
            finish.decorate(&mut meta);
            let now = clock.now_ms();
            let headers = response_headers(&meta, now);
            finish.done(&mut meta);
            let body = if client_ready {
                body
            } else {
                completion_for_client(client, body)
            };
            raw_bytes_response(200, "application/json", &body, &headers)
        }
        Outcome::Failed { error, mut meta } => {
            finish.decorate(&mut meta);
            let now = clock.now_ms();
            let response = error_response(&error, Some((&meta, now)));
            finish.done(&mut meta);
            response
        }
        Outcome::Stream(mut stream) => {
            finish.decorate(stream.meta_mut());
            finish.flush_reports();
            let mut headers = response_headers(stream.meta(), clock.now_ms());
            headers.push(("content-type", "text/event-stream; charset=utf-8".into()));
            headers.push(("cache-control", "no-cache".into()));
            stream_out::respond(stream, table.clone(), env.clone(), finish, &headers)
        }
    }
}

fn random_u64() -> u64 {
    let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (hi << 32) | lo
}

fn request_id() -> String {
    format!("req_{:016x}", random_u64())
}
