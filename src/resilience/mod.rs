//! Resilience: error taxonomy, retry pacing, Retry-After parsing, the per-error policy and the
//! request's subrequest budget, and the cron round's.

pub mod backoff;
pub mod class;
pub mod cron_round;
pub mod policy;
pub mod retry_after;
pub mod subrequests;

pub use class::{http_body_message, ErrorClass, UpstreamError};
