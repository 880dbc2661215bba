//! The cron trigger: probe every deployment whose breaker is open and whose cooldown is over,
//! so breakers close without waiting for user traffic. Each probe is a one-token chat request
//! through the engine, holding the breaker's probe lease like any half-open probe. The round
//! is paid from the invocation's subrequest budget (`resilience::cron_round`): it stops where
//! the next read and probe might not fit, and the next minute's round starts further along.

use super::background::Background;
use super::config_source;
use super::health::DoHealth;
use super::objects::{self, DEPLOYMENTS};
use super::ports::Ports;
use super::snapshot::remember;
use super::transport::WorkerClock;
use crate::api::parse_chat_request;
use crate::config::{Deployment, Route};
use crate::engine::{Clock, Outcome, RequestContext};
use crate::resilience::cron_round::{visit_order, CronRound};
use crate::state::breaker::View;
use serde_json::json;
use std::rc::Rc;
use worker::{console_log, Env, ScheduleContext};

pub async fn run(env: Env, ctx: ScheduleContext, scheduled_ms: u64) {
    let ctx: Rc<dyn Background> = Rc::new(ctx);
    let clock = WorkerClock;
    let Ok(loaded) = config_source::current(&env, ctx.as_ref(), clock.now_ms()).await else {
        return;
    };
    let table = loaded.table.clone();
    let health = DoHealth::new(env.clone(), Rc::clone(&ctx), Rc::clone(&table));
    let ports = Ports::new(&table, &env);
    let engine = ports.engine(&health);
    // The probe is a chat request: an embedding model's breaker is probed by its own traffic
    // (the half-open lease of `embeddings::walk`) instead.
    let eligible: Vec<(usize, &Deployment)> = table
        .deployments
        .iter()
        .enumerate()
        .filter(|(_, d)| d.breaker.enabled && d.breaker.cron_probe && d.embedding.is_none())
        .collect();
    let mut round = CronRound::new(table.limits.subrequests);
    let mut visited = 0;
    let order = visit_order(eligible.len(), scheduled_ms);
    for (index, dep) in order.filter_map(|i| eligible.get(i).copied()) {
        if !round.take_view() {
            break;
        }
        visited += 1;
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
                    outside_calls: round.outside_calls(),
                    request_id: format!("probe_{started}"),
                    started_ms: started,
                    jitter_seed: started,
                },
            )
            .await;
        let (result, engine_used) = match &outcome {
            Outcome::Complete { meta, .. } => ("ok".to_string(), meta.subrequests),
            Outcome::Stream(s) => ("ok".to_string(), s.meta().subrequests),
            Outcome::Failed { error, meta } => (
                format!("{}: {}", error.code, error.message),
                meta.subrequests,
            ),
        };
        round.probed(engine_used);
        console_log!(
            "{}",
            json!({"event": "health_probe", "deployment": dep.name, "result": result,
                   "duration_ms": clock.now_ms().saturating_sub(started)})
        );
    }
    if visited < eligible.len() {
        console_log!(
            "{}",
            json!({"event": "health_probe_deferred", "left": eligible.len() - visited,
                   "subrequests": round.used(), "limit": round.limit()})
        );
    }
    health.flush();
}
