//! Resilience: error taxonomy, retry pacing, Retry-After parsing and the per-error policy.

pub mod backoff;
pub mod class;
pub mod policy;
pub mod retry_after;

pub use class::{http_body_message, ErrorClass, UpstreamError};
