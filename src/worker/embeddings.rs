//! POST /v1/embeddings: check the caller's key, read and validate the body, plan the route
//! (`embeddings::door`), admit the request against the key's limits and budgets, walk the
//! chain (`embeddings::walk`), and answer in OpenAI's shape with the `x-router-*` headers; the
//! request is finished (usage samples, breaker reports, the key's settle, the log line) by
//! the same `Finish` as chat.

use super::auth;
use super::background::Background;
use super::config_source;
use super::finish::Finish;
use super::health::DoHealth;
use super::respond::{
    client_error_response, config_unavailable, raw_bytes_response, read_body, request_headers,
};
use super::secrets::{redactor, EnvSecrets};
use super::transport::{FetchTransport, WorkerClock};
use crate::api::embeddings::{parse_embeddings_request, EmbeddingsRequest};
use crate::api::{ApiError, ClientFormat};
use crate::embeddings::answer::answer_body;
use crate::embeddings::door::{plan, EmbedPlan};
use crate::embeddings::walk::{EmbedOutcome, EmbedWalk};
use crate::engine::{Clock, Meta};
use crate::report::{log_line, response_headers};
use crate::routing::prepare::Routed;
use crate::routing::{Classification, Plan};
use std::rc::Rc;
use worker::{console_log, Context, Env, Result};

/// How long past a request's deadline its reservation is held (as for chat).
use super::chat::{admit, random_u64, Refused};

pub async fn handle(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let ctx: Rc<dyn Background> = Rc::new(ctx);
    match serve(&req, &env, &ctx).await {
        Ok(response) => response,
        Err((e, meta)) => {
            let now = WorkerClock.now_ms();
            if let Some(meta) = &meta {
                console_log!("{}", log_line(meta, now));
            }
            let meta = meta.as_ref().map(|m| (m, now));
            client_error_response(ClientFormat::OpenAi, &e, meta).map(web_sys::Response::from)
        }
    }
}

async fn serve(
    req: &web_sys::Request,
    env: &Env,
    ctx: &Rc<dyn Background>,
) -> std::result::Result<Result<web_sys::Response>, Refused> {
    let started = WorkerClock.now_ms();
    let headers = request_headers(&req.headers());
    let key = auth::authenticate_headers(&headers, env, started)
        .await
        .map_err(|e| (e, None))?;
    let request = read_request(req, env).await.map_err(|e| (e, None))?;
    let loaded = config_source::current(env, ctx.as_ref(), WorkerClock.now_ms())
        .await
        .map_err(|msg| (config_unavailable(msg), None))?;
    let table = loaded.table.clone();
    let planned = plan(&table, &request, key.as_ref()).map_err(|e| (e, None))?;
    let request_id = format!("req_{:016x}", random_u64());
    let admitted = admit(
        env,
        key.as_ref(),
        planned.route,
        planned.reserve,
        &request_id,
        started,
    )
    .await?;
    let EmbedPlan { route, order, .. } = planned;
    let mut finish = Finish {
        env: env.clone(),
        ctx: Rc::clone(ctx),
        health: DoHealth::new(env.clone(), Rc::clone(ctx), table.clone()),
        key,
        waited_before: u32::from(admitted.is_some()),
        admitted,
        cache: None,
        routed: Routed {
            class: Classification {
                task: None,
                route: route.name.clone(),
                source: crate::routing::classify::Source::Model,
            },
            plan: Plan {
                order: order.clone(),
                removed: Vec::new(),
                canary: false,
                sticky: false,
                deferred: Vec::new(),
                explored: false,
            },
            session: None,
        },
    };
    let secrets = EnvSecrets(env.clone());
    let redactor = redactor(&table, env);
    let walk = EmbedWalk {
        table: &table,
        transport: &FetchTransport,
        clock: &WorkerClock,
        secrets: &secrets,
        health: &finish.health,
        redactor: &redactor,
    };
    let meta = Meta {
        request_id,
        route: route.name.clone(),
        started_ms: started,
        ..Meta::default()
    };
    let outcome = walk.run(route, &request, &order, meta, random_u64()).await;
    Ok(match outcome {
        EmbedOutcome::Answered { embedded, mut meta } => {
            finish.decorate(&mut meta);
            let mut headers = response_headers(&meta, WorkerClock.now_ms());
            if embedded.estimated {
                headers.push(("x-router-estimated", "true".into()));
            }
            finish.done(&mut meta);
            let body = answer_body(
                &route.name,
                &embedded.vectors,
                request.encoding,
                embedded.prompt_tokens,
            );
            raw_bytes_response(200, "application/json", &body, &headers)
        }
        EmbedOutcome::Failed { error, mut meta } => {
            finish.decorate(&mut meta);
            let now = WorkerClock.now_ms();
            let response = client_error_response(ClientFormat::OpenAi, &error, Some((&meta, now)))
                .map(web_sys::Response::from);
            finish.done(&mut meta);
            response
        }
    })
}

async fn read_request(
    req: &web_sys::Request,
    env: &Env,
) -> std::result::Result<EmbeddingsRequest, ApiError> {
    let limit = super::vars::number(env, "MAX_BODY_BYTES", super::chat::DEFAULT_MAX_BODY_BYTES);
    match read_body(req, limit).await {
        Ok(Some(b)) => parse_embeddings_request(&b),
        Ok(None) => Err(ApiError::too_large(limit)),
        Err(e) => Err(ApiError::new(
            400,
            "invalid_request_error",
            "invalid_body",
            format!("reading the body failed: {e}"),
        )),
    }
}
