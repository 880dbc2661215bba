//! What the engine does after a failed attempt. The decision depends only on the error class,
//! how many attempts this deployment has had, the route's options and the retry policy.

use super::backoff::{backoff_ms, Jitter};
use super::class::{ErrorClass, UpstreamError};
use crate::config::RetryPolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Try the same deployment again after waiting this long.
    RetrySame { delay_ms: u64 },
    /// Move to the next deployment in the chain.
    NextDeployment,
    /// Move to the next deployment whose context window is larger than this one.
    NextLargerContext,
    /// Stop: the caller gets this error.
    Fail,
}

pub struct Decision<'a> {
    pub error: &'a UpstreamError,
    /// Attempts already made on this deployment, including the failed one.
    pub attempts_here: u32,
    pub retry: &'a RetryPolicy,
    pub fallback_on_content_policy: bool,
}

pub fn decide(d: &Decision<'_>, jitter: &mut Jitter) -> Action {
    use ErrorClass::*;
    let can_retry = d.attempts_here < d.retry.max_attempts;
    match d.error.class {
        RateLimited | Overloaded | ServerError | ConnectError | StreamCut | MalformedResponse => {
            if !can_retry {
                return Action::NextDeployment;
            }
            match d.error.retry_after_ms {
                Some(ms) if ms > d.retry.max_retry_after_ms => Action::NextDeployment,
                Some(ms) => Action::RetrySame { delay_ms: ms },
                None => Action::RetrySame {
                    delay_ms: backoff_ms(d.retry, d.attempts_here, jitter),
                },
            }
        }
        // A silent provider is never asked again on this request.
        TimeoutConnect | TimeoutFirstToken | TimeoutIdle | TimeoutAttempt => Action::NextDeployment,
        // A redirect is the deployment's configuration, not a passing fault: no retry.
        AuthError | NotFound | Redirect => Action::NextDeployment,
        // Another model may follow the schema; the same one was just asked.
        InvalidOutput => Action::NextDeployment,
        ContextLengthExceeded => Action::NextLargerContext,
        ContentPolicy if d.fallback_on_content_policy => Action::NextDeployment,
        ContentPolicy | InvalidRequest => Action::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(
        class: ErrorClass,
        attempts_here: u32,
        retry_after_ms: Option<u64>,
        cp: bool,
    ) -> Action {
        let mut error = UpstreamError::new(class, "x");
        error.retry_after_ms = retry_after_ms;
        let retry = RetryPolicy {
            max_attempts: 2,
            backoff_base_ms: 200,
            backoff_max_ms: 2000,
            max_retry_after_ms: 5000,
        };
        decide(
            &Decision {
                error: &error,
                attempts_here,
                retry: &retry,
                fallback_on_content_policy: cp,
            },
            &mut Jitter::new(1),
        )
    }

    #[test]
    fn table() {
        use ErrorClass::*;
        assert_eq!(
            decide_for(RateLimited, 1, Some(1000), false),
            Action::RetrySame { delay_ms: 1000 }
        );
        assert_eq!(
            decide_for(RateLimited, 1, Some(9000), false),
            Action::NextDeployment
        );
        assert_eq!(
            decide_for(RateLimited, 2, Some(10), false),
            Action::NextDeployment
        );
        assert!(
            matches!(decide_for(ServerError, 1, None, false), Action::RetrySame { delay_ms } if (100..=200).contains(&delay_ms))
        );
        assert_eq!(
            decide_for(TimeoutFirstToken, 1, None, false),
            Action::NextDeployment
        );
        assert_eq!(
            decide_for(AuthError, 1, None, false),
            Action::NextDeployment
        );
        assert_eq!(
            decide_for(ContextLengthExceeded, 1, None, false),
            Action::NextLargerContext
        );
        assert_eq!(decide_for(ContentPolicy, 1, None, false), Action::Fail);
        assert_eq!(
            decide_for(ContentPolicy, 1, None, true),
            Action::NextDeployment
        );
        assert_eq!(decide_for(InvalidRequest, 1, None, true), Action::Fail);
    }
}
