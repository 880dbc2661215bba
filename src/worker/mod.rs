//! Cloudflare Worker glue: entry point, path routing, and the adapters behind the engine's
//! ports (fetch transport, clock, KV config source, secrets). All I/O lives here.

mod admin;
mod admin_error;
mod admin_keys;
mod admin_stats;
mod admin_table;
mod alerts;
mod auth;
mod background;
mod cache;
mod chat;
mod config_source;
mod cors;
mod count_tokens;
mod cron;
mod dashboard;
mod embeddings;
mod finish;
mod health;
mod kv_text;
pub mod objects;
mod outbox;
mod ports;
mod pump;
mod respond;
mod routing;
mod secrets;
mod settle;
mod snapshot;
mod stream_out;
mod table_current;
mod transport;
mod vars;

use crate::api::error::Allowed;
use crate::api::{ApiError, ClientFormat};
use crate::engine::Clock;
use respond::{error_response, json_response};
use serde_json::json;
use transport::WorkerClock;
use worker::{
    event, Context, Env, Method, Request, Response, Result, ScheduleContext, ScheduledEvent,
};

#[event(fetch)]
async fn fetch(raw: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    console_error_panic_hook::set_once();
    let path = crate::api::url_path(&raw.url()).to_string();
    let method = raw.method();
    // Only browsers send `Origin`: everyone else pays this one lookup.
    let origin = raw.headers().get("origin").ok().flatten();
    if method == "OPTIONS" {
        let requested = raw
            .headers()
            .get("access-control-request-headers")
            .ok()
            .flatten();
        return cors::preflight(&env, &ctx, origin.as_deref(), requested.as_deref()).await;
    }
    // The allowed origins, read before the handler takes the context (a browser's request
    // only: the table is this isolate's cached one).
    let cors_origins = match origin {
        Some(_) => cors::origins(&env, &ctx).await,
        None => Vec::new(),
    };
    // The hot path works on the runtime's request as it is (see `chat::handle`).
    let answer = match (method.as_str(), path.as_str()) {
        ("POST", "/v1/chat/completions") => {
            chat::handle(raw, path, env, ctx, ClientFormat::OpenAi).await
        }
        ("POST", "/v1/messages") => {
            chat::handle(raw, path, env, ctx, ClientFormat::Anthropic).await
        }
        ("POST", "/v1/responses") => {
            chat::handle(raw, path, env, ctx, ClientFormat::Responses).await
        }
        ("POST", "/v1/messages/count_tokens") => count_tokens::handle(raw, env, ctx).await,
        ("POST", "/v1/embeddings") => {
            // Boxed behind `dyn`: its poll stays out of the chat path's state machine.
            let answer: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> =
                Box::pin(embeddings::handle(raw, env, ctx));
            answer.await
        }
        _ => other(Request::from(raw), env, ctx)
            .await
            .map(web_sys::Response::from),
    }?;
    cors::add_headers(&answer, &cors_origins, origin.as_deref());
    Ok(answer)
}

/// Everything but the chat endpoints.
async fn other(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    match (path.as_str(), method) {
        ("/v1/chat/completions" | "/v1/responses", _) => {
            error_response(&ApiError::method_not_allowed(Allowed::Post), None)
        }
        // Retrieve, delete, cancel, input_items: all need stored responses.
        (p, _) if p.starts_with("/v1/responses/") => error_response(
            &ApiError::not_found(format!(
                "unknown path {p}: this gateway does not store responses (it is stateless), so they cannot be retrieved, cancelled or deleted"
            )),
            None,
        ),
        ("/v1/messages" | "/v1/messages/count_tokens", _) => respond::client_error_response(
            ClientFormat::Anthropic,
            &ApiError::method_not_allowed(Allowed::Post),
            None,
        ),
        ("/v1/models", Method::Get) => models(&req, &env, &ctx).await,
        (p, _) if p.starts_with("/admin/api/") => admin::handle(req, env, ctx).await,
        (p, Method::Get) if dashboard::is_asset(p) => dashboard::serve(p),
        ("/healthz", Method::Get) => healthz(&req, &env, &ctx).await,
        ("/v1/embeddings", _) => error_response(&ApiError::method_not_allowed(Allowed::Post), None),
        ("/v1/models" | "/healthz", _) => {
            error_response(&ApiError::method_not_allowed(Allowed::Get), None)
        }
        (p, _) => {
            // In keys mode only a caller with a key is told which paths exist.
            let message = if auth::may_see_details(&req, &env, WorkerClock.now_ms()).await {
                format!(
                    "unknown path {p}; see /v1/chat/completions, /v1/messages, /v1/responses, /v1/embeddings, /v1/models, /healthz"
                )
            } else {
                format!("unknown path {p}")
            };
            error_response(&ApiError::not_found(message), None)
        }
    }
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    cron::run(env, ctx, event.schedule() as u64).await;
}

/// The routes, as OpenAI's model list; in keys mode only for a caller with a valid key, and
/// only the routes that key may use.
async fn models(req: &Request, env: &Env, ctx: &Context) -> Result<Response> {
    let key = match auth::authenticate(req, env, WorkerClock.now_ms()).await {
        Ok(k) => k,
        Err(e) => return error_response(&e, None),
    };
    let loaded = match config_source::current(env, ctx, WorkerClock.now_ms()).await {
        Ok(l) => l,
        Err(msg) => return error_response(&respond::config_unavailable(msg), None),
    };
    // A key restricted to some routes sees only those.
    let list = crate::api::models::model_list(&loaded.table, |name| {
        key.as_ref().is_none_or(|k| k.allows(name))
    });
    json_response(200, &list)
}

/// The gateway's status for anyone (load balancers, uptime checks); where the table comes
/// from and what is wrong with it only for a caller who may see details (`auth`).
async fn healthz(req: &Request, env: &Env, ctx: &Context) -> Result<Response> {
    let (code, status, config) = match config_source::current(env, ctx, WorkerClock.now_ms()).await
    {
        Ok(l) => (
            200,
            if l.error.is_some() { "degraded" } else { "ok" },
            json!({"source": l.source.as_str(), "error": l.error,
                   "routes": l.table.routes.len(), "checked_at_ms": l.checked_at_ms}),
        ),
        Err(msg) => (503, "down", json!({"source": null, "error": msg})),
    };
    if auth::may_see_details(req, env, WorkerClock.now_ms()).await {
        json_response(code, &json!({"status": status, "config": config}))
    } else {
        json_response(code, &json!({"status": status}))
    }
}
