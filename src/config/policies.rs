//! Validation of the retry and timeout blocks, which the defaults, each deployment and each
//! route may set: every field on top of a base policy (built-in defaults, then `defaults`,
//! then the deployment's), so a block names only what it changes.

use super::check::{Errors, MAX_TIMEOUT_MS};
use super::raw::{RawRetry, RawTimeouts};
use super::types::{RetryPolicy, Timeouts};

/// Most attempts on one deployment.
const MAX_ATTEMPTS: u32 = 10;

pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    backoff_base_ms: 200,
    backoff_max_ms: 2_000,
    max_retry_after_ms: 5_000,
};
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect_ms: 10_000,
    first_token_ms: 30_000,
    idle_ms: 30_000,
    attempt_ms: 120_000,
};

pub(super) fn retry(
    path: &str,
    raw: &RawRetry,
    base: &RetryPolicy,
    errs: &mut Errors,
) -> RetryPolicy {
    let max_attempts = match raw.max_attempts {
        Some(n) if n == 0 || n > MAX_ATTEMPTS => {
            errs.push(
                &format!("{path}.max_attempts"),
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            );
            base.max_attempts
        }
        Some(n) => n,
        None => base.max_attempts,
    };
    let backoff_base_ms = errs.ms(
        &format!("{path}.backoff_base_ms"),
        raw.backoff_base_ms,
        base.backoff_base_ms,
    );
    let backoff_max_ms = errs.ms(
        &format!("{path}.backoff_max_ms"),
        raw.backoff_max_ms,
        base.backoff_max_ms,
    );
    if backoff_max_ms < backoff_base_ms {
        errs.push(
            &format!("{path}.backoff_max_ms"),
            "must not be below backoff_base_ms",
        );
    }
    let max_retry_after_ms = match raw.max_retry_after_ms {
        Some(v) if v > MAX_TIMEOUT_MS => {
            errs.push(
                &format!("{path}.max_retry_after_ms"),
                format!("must be at most {MAX_TIMEOUT_MS} ms"),
            );
            base.max_retry_after_ms
        }
        Some(v) => v,
        None => base.max_retry_after_ms,
    };
    RetryPolicy {
        max_attempts,
        backoff_base_ms,
        backoff_max_ms,
        max_retry_after_ms,
    }
}

pub(super) fn timeouts(
    path: &str,
    raw: &RawTimeouts,
    base: &Timeouts,
    errs: &mut Errors,
) -> Timeouts {
    Timeouts {
        connect_ms: errs.ms(
            &format!("{path}.connect_ms"),
            raw.connect_ms,
            base.connect_ms,
        ),
        first_token_ms: errs.ms(
            &format!("{path}.first_token_ms"),
            raw.first_token_ms,
            base.first_token_ms,
        ),
        idle_ms: errs.ms(&format!("{path}.idle_ms"), raw.idle_ms, base.idle_ms),
        attempt_ms: errs.ms(
            &format!("{path}.attempt_ms"),
            raw.attempt_ms,
            base.attempt_ms,
        ),
    }
}
