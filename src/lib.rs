//! Edge LLM router: an OpenAI-compatible gateway with fallback chains, built as a pure core
//! (config, wire formats, providers, resilience, engine) and thin Cloudflare Worker glue.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod api;
pub mod config;
pub mod engine;
pub mod hash;
pub mod keys;
pub mod percent;
pub mod providers;
pub mod redact;
pub mod report;
pub mod resilience;
pub mod routing;
pub mod schema;
pub mod sse;
pub mod state;
pub mod usage;

pub mod egress;
#[cfg(target_arch = "wasm32")]
mod worker;
