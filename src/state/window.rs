//! A rolling window of outcome counts, as a ring of equal time buckets.
//!
//! Invariant: `counts()` only ever includes outcomes recorded within the last `window_ms`
//! (to bucket precision), because every read and write first drops buckets that have left the
//! window. This is what lets a breaker judge a *recent* failure rate without keeping one entry
//! per request: memory is fixed at `BUCKETS` pairs however busy the deployment is.

use serde::{Deserialize, Serialize};

/// Buckets per window: the window slides in steps of `window_ms / BUCKETS`.
pub const BUCKETS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.ok.saturating_add(self.failed)
    }
    /// Failure rate in basis points (0 when empty).
    pub fn failure_bps(&self) -> u64 {
        self.failed
            .saturating_mul(10_000)
            .checked_div(self.total())
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Window {
    /// (bucket number = now / bucket_ms, counts), oldest first, at most BUCKETS entries.
    #[serde(default)]
    buckets: Vec<(u64, Counts)>,
}

impl Window {
    fn bucket_ms(window_ms: u64) -> u64 {
        (window_ms / BUCKETS).max(1)
    }

    fn prune(&mut self, window_ms: u64, now_ms: u64) {
        let current = now_ms / Self::bucket_ms(window_ms);
        let oldest_kept = current.saturating_sub(BUCKETS - 1);
        self.buckets
            .retain(|(n, _)| *n >= oldest_kept && *n <= current);
    }

    pub fn record(&mut self, ok: bool, window_ms: u64, now_ms: u64) {
        self.prune(window_ms, now_ms);
        let current = now_ms / Self::bucket_ms(window_ms);
        let counts = match self.buckets.last_mut() {
            Some((n, c)) if *n == current => c,
            _ => {
                self.buckets.push((current, Counts::default()));
                match self.buckets.last_mut() {
                    Some((_, c)) => c,
                    None => return,
                }
            }
        };
        if ok {
            counts.ok = counts.ok.saturating_add(1);
        } else {
            counts.failed = counts.failed.saturating_add(1);
        }
    }

    pub fn counts(&self, window_ms: u64, now_ms: u64) -> Counts {
        let current = now_ms / Self::bucket_ms(window_ms);
        let oldest_kept = current.saturating_sub(BUCKETS - 1);
        self.buckets
            .iter()
            .filter(|(n, _)| *n >= oldest_kept && *n <= current)
            .fold(Counts::default(), |acc, (_, c)| Counts {
                ok: acc.ok.saturating_add(c.ok),
                failed: acc.failed.saturating_add(c.failed),
            })
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_last_window() {
        let mut w = Window::default();
        for t in 0..10 {
            w.record(false, 10_000, t * 1000);
        }
        assert_eq!(w.counts(10_000, 9_999).failed, 10);
        // One bucket (the t=0 one) has left the window.
        assert_eq!(w.counts(10_000, 10_000).failed, 9);
        w.record(true, 10_000, 10_500);
        assert_eq!(w.counts(10_000, 10_500), Counts { ok: 1, failed: 9 });
        assert_eq!(w.counts(10_000, 30_000).total(), 0);
        assert!(w.buckets.len() <= BUCKETS as usize);
    }

    #[test]
    fn memory_is_bounded() {
        let mut w = Window::default();
        for t in 0..10_000 {
            w.record(t % 3 == 0, 1_000, t * 7);
        }
        assert!(w.buckets.len() <= BUCKETS as usize);
    }

    #[test]
    fn failure_rate() {
        let c = Counts { ok: 3, failed: 1 };
        assert_eq!(c.failure_bps(), 2_500);
        assert_eq!(Counts::default().failure_bps(), 0);
    }
}
