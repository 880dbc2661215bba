//! The cron trigger: probe every deployment whose breaker is open and whose cooldown is over,
//! so breakers close without waiting for user traffic. Each probe is a one-token chat request
//! through the engine, holding the breaker's probe lease like any half-open probe.

use super::background::Background;
use super::config_source;
use super::health::DoHealth;
use super::objects::{self, DEPLOYMENTS};
use super::ports::Ports;
use super::snapshot::remember;
use super::transport::WorkerClock;
use crate::api::parse_chat_request;
use crate::config::Route;
use crate::engine::{Clock, Outcome, RequestContext};
use crate::state::breaker::View;
use serde_json::json;
use std::rc::Rc;
use worker::{console_log, Env, ScheduleContext};

pub async fn run(env: Env, ctx: ScheduleContext) {
    let ctx: Rc<dyn Background> = Rc::new(ctx);
    let clock = WorkerClock;
    let Ok(loaded) = config_source::current(&env, ctx.as_ref(), clock.now_ms()).await else {
        return;
    };
    let table = loaded.table.clone();
    let health = DoHealth::new(env.clone(), Rc::clone(&ctx), Rc::clone(&table));
    let ports = Ports::new(&table, &env);
    let engine = ports.engine(&health);
    for (index, dep) in table.deployments.iter().enumerate() {
        // The probe is a chat request: an embedding model's breaker is probed by its own
        // traffic (the half-open lease of `embeddings::walk`) instead.
        if !dep.breaker.enabled || !dep.breaker.cron_probe || dep.embedding.is_some() {
            continue;
        }
        let view: worker::Result<View> =
            objects::call(&env, DEPLOYMENTS, &dep.name, "/view", None::<&()>).await;
        let Ok(view) = view else { continue };
        remember(&dep.name, view, clock.now_ms());
        if view != View::HalfOpen {
            continue;
        }
        let Some(route) = Route::probe(&table, index) else {
            continue;
        };
        let body = json!({"model": route.name, "max_tokens": 1,
                          "messages": [{"role": "user", "content": "ping"}]});
        let Ok(req) = parse_chat_request(body.to_string().as_bytes()) else {
            continue;
        };
        let started = clock.now_ms();
        let outcome = engine
            .run(
                &route,
                &Rc::new(req),
                RequestContext {
                    order: None,
                    outside_calls: 0,
                    request_id: format!("probe_{started}"),
                    started_ms: started,
                    jitter_seed: started,
                },
            )
            .await;
        let result = match &outcome {
            Outcome::Complete { .. } | Outcome::Stream(_) => "ok".to_string(),
            Outcome::Failed { error, .. } => format!("{}: {}", error.code, error.message),
        };
        console_log!(
            "{}",
            json!({"event": "health_probe", "deployment": dep.name, "result": result,
                   "duration_ms": clock.now_ms().saturating_sub(started)})
        );
    }
    health.flush();
}
