//! How fast a deployment answers, smoothed: time to first token and output tokens per
//! second, as exponentially weighted moving averages (weight 1/5 for each new sample) in
//! integers. The "fastest" routing strategy reads it.
//!
//! Invariant: only successful answers, and a hedge's cancelled loser's wait as a lower bound
//! of its time to first token, move it (a failure says nothing about speed), and a
//! deployment with no measurement has `None`, never a made-up figure.

use super::degradation::HedgeWait;
use super::stats::Sample;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Speed {
    /// Streamed answers: send → first content chunk.
    pub ttft_ms: Option<u64>,
    /// Any answer: send → complete (non-streamed) or send → end of stream.
    pub latency_ms: Option<u64>,
    pub tokens_per_s: Option<u64>,
}

fn ewma(old: Option<u64>, new: u64) -> u64 {
    old.map_or(new, |o| o.saturating_mul(4).saturating_add(new) / 5)
}

impl Speed {
    pub fn record(&mut self, s: &Sample) {
        if !s.ok {
            return;
        }
        if let Some(t) = s.ttft_ms {
            self.ttft_ms = Some(ewma(self.ttft_ms, t));
        }
        self.latency_ms = Some(ewma(self.latency_ms, s.latency_ms));
        let generating_ms = s.latency_ms.saturating_sub(s.ttft_ms.unwrap_or(0));
        if s.output_tokens > 0 && generating_ms > 0 {
            let tps = s.output_tokens.saturating_mul(1000) / generating_ms;
            self.tokens_per_s = Some(ewma(self.tokens_per_s, tps));
        }
    }

    /// A first attempt cancelled by its hedge after `w.waited_ms` without committing: its
    /// time to first token (a stream) or to the whole answer is at least that, so that average
    /// moves up to it when it is below (a lower bound under the average says nothing).
    pub fn record_hedge_wait(&mut self, w: HedgeWait) {
        let avg = if w.stream {
            &mut self.ttft_ms
        } else {
            &mut self.latency_ms
        };
        if avg.is_none_or(|t| w.waited_ms > t) {
            *avg = Some(ewma(*avg, w.waited_ms));
        }
    }

    /// Time to first token, or the whole latency while no stream was measured.
    pub fn first_token_ms(&self) -> Option<u64> {
        self.ttft_ms.or(self.latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ttft: Option<u64>, latency: u64, tokens: u64) -> Sample {
        Sample {
            ok: true,
            output_tokens: tokens,
            latency_ms: latency,
            ttft_ms: ttft,
            ..Sample::default()
        }
    }

    #[test]
    fn smooths_and_ignores_failures() {
        let mut s = Speed::default();
        assert_eq!(s.first_token_ms(), None);
        s.record(&answer(Some(100), 1100, 500));
        assert_eq!((s.ttft_ms, s.tokens_per_s), (Some(100), Some(500)));
        s.record(&answer(Some(600), 1600, 500));
        assert_eq!(s.ttft_ms, Some(200), "(4*100 + 600) / 5");
        let before = s;
        s.record(&Sample {
            ok: false,
            latency_ms: 9_000,
            ..Sample::default()
        });
        assert_eq!(s, before);
    }

    #[test]
    fn non_streamed_answers_give_latency_only() {
        let mut s = Speed::default();
        s.record(&answer(None, 800, 0));
        assert_eq!((s.ttft_ms, s.first_token_ms()), (None, Some(800)));
    }

    #[test]
    fn a_cancelled_wait_only_moves_its_average_up() {
        let wait = |stream, waited_ms| HedgeWait { stream, waited_ms };
        let mut s = Speed::default();
        s.record_hedge_wait(wait(true, 300));
        assert_eq!(s.ttft_ms, Some(300));
        s.record_hedge_wait(wait(true, 100));
        assert_eq!(s.ttft_ms, Some(300), "a lower bound under the average");
        s.record_hedge_wait(wait(true, 800));
        assert_eq!(s.ttft_ms, Some(400), "(4*300 + 800) / 5");
        assert_eq!(s.latency_ms, None);
        s.record_hedge_wait(wait(false, 2_000));
        assert_eq!((s.ttft_ms, s.latency_ms), (Some(400), Some(2_000)));
    }
}
