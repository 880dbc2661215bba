//! Retry pacing: exponential backoff with jitter, and the rule that no deployment sees more
//! than two attempts inside any one-second window. Pure: randomness comes in as a seed.

use crate::config::RetryPolicy;

/// SplitMix64: a tiny deterministic generator; the glue seeds it from the platform's RNG.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed)
    }
    /// A value in `[0, 1_000_000)`.
    pub fn next_millionths(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % 1_000_000
    }
}

/// Delay before retry number `retry` (1 = first retry): `base * 2^(retry-1)` capped at
/// `backoff_max_ms`, then "equal jitter": uniformly in `[d/2, d]`.
pub fn backoff_ms(policy: &RetryPolicy, retry: u32, jitter: &mut Jitter) -> u64 {
    let exp = retry.saturating_sub(1).min(20);
    let d = policy
        .backoff_base_ms
        .saturating_mul(1 << exp)
        .min(policy.backoff_max_ms);
    let half = d / 2;
    half + (d - half) * jitter.next_millionths() / 1_000_000
}

/// Earliest start for the next attempt on a deployment so that no two attempts before it
/// fall within one second of it: the attempt two back must be ≥ 1000 ms earlier.
pub fn earliest_next_start(previous_starts: &[u64]) -> u64 {
    let n = previous_starts.len();
    match n.checked_sub(2).and_then(|i| previous_starts.get(i)) {
        Some(two_back) => two_back + 1000,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff_base_ms: 200,
            backoff_max_ms: 1000,
            max_retry_after_ms: 5000,
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut j = Jitter::new(7);
        for _ in 0..100 {
            let d1 = backoff_ms(&policy(), 1, &mut j);
            assert!((100..=200).contains(&d1), "{d1}");
            let d3 = backoff_ms(&policy(), 3, &mut j);
            assert!((400..=800).contains(&d3), "{d3}");
            let d9 = backoff_ms(&policy(), 9, &mut j);
            assert!((500..=1000).contains(&d9), "{d9}");
        }
    }

    #[test]
    fn at_most_two_attempts_per_second() {
        assert_eq!(earliest_next_start(&[]), 0);
        assert_eq!(earliest_next_start(&[10]), 0);
        assert_eq!(earliest_next_start(&[10, 150]), 1010);
        assert_eq!(earliest_next_start(&[10, 150, 1010]), 1150);
    }
}
