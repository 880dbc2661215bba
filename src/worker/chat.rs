//! POST /v1/chat/completions, /v1/messages and /v1/responses: check the caller's key, read and validate the
//! body, let `routing::prepare` decide the route, admit the request against the key's limits,
//! run the engine, and turn its outcome into a response (JSON, or an SSE stream pulled from
//! the engine).

use super::auth::{self, Admitted};
use super::background::Background;
use super::cache;
use super::config_source;
use super::finish::Finish;
use super::health::DoHealth;
use super::ports::Ports;
use super::respond::{
    client_error_response, config_unavailable, raw_bytes_response, read_body, request_headers,
};
use super::routing;
use super::stream_out;
use super::transport::WorkerClock;
use crate::api::anthropic::parse_messages_request;
use crate::api::responses::parse_responses_request;
use crate::api::{parse_chat_request, ApiError, ChatRequest, ClientFormat};
use crate::config::Route;
use crate::egress::completion_for_client;
use crate::engine::{Clock, Meta, Outcome, RequestContext};
use crate::keys::KeyRecord;
use crate::report::{log_line, response_headers};
use crate::routing::prepare::{prepare, Door, Prepared};
use crate::state::quota::Estimate;
use std::rc::Rc;
use worker::{console_log, Context, Env, Result};

pub(super) const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// How long past a request's deadline its reservation is held (its settle is sent after it).
const RESERVATION_MARGIN_MS: u64 = 60_000;

/// An answer given before the engine ran: the error, and what to report with it.
pub(super) type Refused = (ApiError, Option<Meta>);

/// Serves `/v1/chat/completions` (OpenAI clients), `/v1/messages` (Anthropic clients) and
/// `/v1/responses` (Responses API clients).
/// Works on the runtime's own request and response objects (no `worker::Request`, which
/// reads `request.cf` up front, and no header-by-header copies: see `http.js`).
pub async fn handle(
    req: web_sys::Request,
    path: String,
    env: Env,
    ctx: Context,
    client: ClientFormat,
) -> Result<web_sys::Response> {
    let ctx: Rc<dyn Background> = Rc::new(ctx);
    match serve(&req, &path, &env, &ctx, client).await {
        Ok(response) => response,
        Err((e, meta)) => {
            let now = WorkerClock.now_ms();
            if let Some(meta) = &meta {
                console_log!("{}", log_line(meta, now));
            }
            let meta = meta.as_ref().map(|m| (m, now));
            client_error_response(client, &e, meta).map(web_sys::Response::from)
        }
    }
}

async fn serve(
    req: &web_sys::Request,
    path: &str,
    env: &Env,
    ctx: &Rc<dyn Background>,
    client: ClientFormat,
) -> std::result::Result<Result<web_sys::Response>, Refused> {
    let started = WorkerClock.now_ms();
    let headers = request_headers(&req.headers());
    let key = auth::authenticate_headers(&headers, env, started)
        .await
        .map_err(|e| (e, None))?;
    let mut chat = read_request(req, env, client, &headers)
        .await
        .map_err(|e| (e, None))?;
    let loaded = config_source::current(env, ctx.as_ref(), WorkerClock.now_ms())
        .await
        .map_err(|msg| (config_unavailable(msg), None))?;
    let table = loaded.table.clone();
    let door = Door {
        path,
        headers: &headers,
        key: key.as_ref(),
        now_ms: WorkerClock.now_ms(),
        random: random_u64(),
    };
    let prepared = prepare(&routing::world(&table), &mut chat, &door).map_err(|e| (e, None))?;
    let request_id = request_id();
    let reserve = prepared.reserve.unwrap_or_default();
    let admitted = admit(
        env,
        key.as_ref(),
        prepared.route,
        reserve,
        &request_id,
        started,
    )
    .await?;
    let Prepared { route, routed, .. } = prepared;
    let decision = route.cache.as_ref().map(|policy| {
        let key_id = key.as_ref().map(|k| k.id.as_str());
        crate::cache::decide(policy, &route.name, key_id, &chat, &headers)
    });
    let cached = cache::lookup(decision.as_ref()).await;
    let finish = Finish {
        env: env.clone(),
        ctx: Rc::clone(ctx),
        health: DoHealth::new(env.clone(), Rc::clone(ctx), table.clone()),
        key,
        waited_before: u32::from(admitted.is_some()),
        admitted,
        routed,
        cache: cache::status(decision.as_ref()),
    };
    if let Some(entry) = cached {
        let meta = Meta {
            request_id,
            route: route.name.clone(),
            stream: chat.stream,
            started_ms: started,
            ..Meta::default()
        };
        return Ok(cache::serve_hit(&entry, &chat, client, meta, finish));
    }
    let ports = Ports::new(&table, env);
    let ctx_req = RequestContext {
        order: Some(finish.routed.plan.order.clone()),
        outside_calls: cache::outside_calls(decision.as_ref()),
        request_id,
        started_ms: started,
        jitter_seed: random_u64(),
    };
    let outcome = ports
        .engine(&finish.health)
        .run(route, &Rc::new(chat), ctx_req)
        .await;
    Ok(respond(outcome, client, ports, finish, decision.as_ref()))
}

/// The request's body, read within the size limit and parsed in the client's format.
async fn read_request(
    req: &web_sys::Request,
    env: &Env,
    client: ClientFormat,
    headers: &[(String, String)],
) -> std::result::Result<ChatRequest, ApiError> {
    let limit = super::vars::number(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES);
    let body = match read_body(req, limit).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(ApiError::too_large(limit)),
        Err(e) => {
            return Err(ApiError::new(
                400,
                "invalid_request_error",
                "invalid_body",
                format!("reading the body failed: {e}"),
            ))
        }
    };
    let mut chat = match client {
        ClientFormat::OpenAi => parse_chat_request(&body)?,
        ClientFormat::Anthropic => parse_messages_request(&body)?,
        ClientFormat::Responses => parse_responses_request(&body)?,
    };
    if client == ClientFormat::Anthropic {
        chat.anthropic_headers = crate::api::chat::anthropic_headers_of(headers);
    }
    Ok(chat)
}

/// The key's admission (waited on: limits must be strict). A refusal is logged with what
/// the key's object said of its headroom.
pub(super) async fn admit(
    env: &Env,
    key: Option<&KeyRecord>,
    route: &Route,
    reserve: Estimate,
    request_id: &str,
    started: u64,
) -> std::result::Result<Option<Admitted>, Refused> {
    let Some(k) = key else { return Ok(None) };
    // Held until the request can no longer run, and its settle has had time to arrive.
    let until = started
        .saturating_add(route.request_timeout_ms)
        .saturating_add(RESERVATION_MARGIN_MS);
    match auth::admit(env, k, request_id, reserve, until).await {
        Ok(a) => Ok(Some(a)),
        Err((e, headroom)) => {
            let meta = Meta {
                request_id: request_id.to_string(),
                route: route.name.clone(),
                started_ms: started,
                key_name: Some(k.name.clone()),
                extra_headers: auth::ratelimit_headers(&headroom),
                state_calls: (1, 0),
                status: e.status,
                error: Some(format!("{}: {}", e.code, e.message)),
                ..Meta::default()
            };
            Err((e, Some(meta)))
        }
    }
}

/// The engine's outcome as the client's response; the request is finished (booked, logged)
/// here, or by the stream's task when it ends.
fn respond(
    outcome: Outcome<super::transport::FetchBody>,
    client: ClientFormat,
    ports: Ports,
    mut finish: Finish,
    cache_decision: Option<&crate::cache::Decision>,
) -> Result<web_sys::Response> {
    match outcome {
        Outcome::Complete {
            body,
            client_ready,
            mut meta,
        } => {
            finish.decorate(&mut meta);
            let headers = response_headers(&meta, WorkerClock.now_ms());
            finish.done(&mut meta);
            cache::store(&finish.ctx, cache_decision, &meta, &body, client_ready);
            let body = if client_ready {
                body
            } else {
                completion_for_client(client, body)
            };
            raw_bytes_response(200, "application/json", &body, &headers)
        }
        Outcome::Failed { error, mut meta } => {
            finish.decorate(&mut meta);
            let now = WorkerClock.now_ms();
            let response = client_error_response(client, &error, Some((&meta, now)))
                .map(web_sys::Response::from);
            finish.done(&mut meta);
            response
        }
        Outcome::Stream(mut stream) => {
            finish.decorate(stream.meta_mut());
            finish.flush_reports();
            let mut headers = response_headers(stream.meta(), WorkerClock.now_ms());
            headers.push(("content-type", "text/event-stream; charset=utf-8".into()));
            headers.push(("cache-control", "no-cache".into()));
            stream_out::respond(stream, ports, finish, &headers)
        }
    }
}

pub(super) fn random_u64() -> u64 {
    let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (hi << 32) | lo
}

fn request_id() -> String {
    format!("req_{:016x}", random_u64())
}
