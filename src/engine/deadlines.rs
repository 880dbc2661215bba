//! The deadlines of one attempt (headers, first token, the whole attempt, idle gaps), each
//! with the error class it ends in, and the error a passed deadline becomes. Shared by the
//! attempt before the commit point and the live stream after it.

use crate::config::Deployment;
use crate::resilience::{ErrorClass, UpstreamError};

/// Deadlines of one attempt, absolute ms.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub headers: (u64, ErrorClass),
    pub first_token: (u64, ErrorClass),
    pub attempt: (u64, ErrorClass),
    pub idle_ms: u64,
}

impl Deadlines {
    pub fn new(d: &Deployment, stream: bool, start: u64, request_deadline: u64) -> Self {
        let t = &d.timeouts;
        let attempt = earliest(&[
            (start + t.attempt_ms, ErrorClass::TimeoutAttempt),
            (request_deadline, ErrorClass::TimeoutAttempt),
        ]);
        if !stream {
            return Deadlines {
                headers: attempt,
                first_token: attempt,
                attempt,
                idle_ms: t.idle_ms,
            };
        }
        let first_token = earliest(&[
            (start + t.first_token_ms, ErrorClass::TimeoutFirstToken),
            attempt,
        ]);
        let headers = earliest(&[
            (start + t.connect_ms, ErrorClass::TimeoutConnect),
            first_token,
        ]);
        Deadlines {
            headers,
            first_token,
            attempt,
            idle_ms: t.idle_ms,
        }
    }
}

pub fn earliest(options: &[(u64, ErrorClass)]) -> (u64, ErrorClass) {
    options
        .iter()
        .copied()
        .min_by_key(|(t, _)| *t)
        .unwrap_or((0, ErrorClass::TimeoutAttempt))
}

pub fn timeout_error((_, class): (u64, ErrorClass), waiting_for: &str) -> UpstreamError {
    let what = match class {
        ErrorClass::TimeoutConnect => "connect timeout",
        ErrorClass::TimeoutFirstToken => "time-to-first-token timeout",
        ErrorClass::TimeoutIdle => "idle timeout",
        _ => "attempt deadline",
    };
    UpstreamError::new(
        class,
        format!("no {waiting_for} from upstream before the {what}"),
    )
}
