//! Shared-state machines kept in Durable Objects: circuit breakers, rate limits and budgets,
//! and usage counters. Pure: every method takes `now_ms`, so the objects and native tests
//! drive them the same way.

pub mod alerts;
pub mod alerts_fallback;
pub mod breaker;
pub mod degradation;
pub mod hourly;
pub mod key_money;
pub mod quota;
pub mod recent;
pub mod route_stats;
pub mod route_view;
pub mod speed;
pub mod stats;
pub mod table_log;
pub mod window;

#[cfg(test)]
mod stored_shapes;
