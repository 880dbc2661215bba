//! The RPM/TPM window of a [`Quota`](super::Quota): one-second buckets of the last 60 seconds
//! (only non-empty ones are stored), their totals, and how long until a limit frees up.

use super::{sat_sum, Quota, Reservation};
use serde::{Deserialize, Serialize};

/// Length of the RPM/TPM window in one-second buckets.
const WINDOW_SECS: u64 = 60;
const WINDOW_MS: u64 = WINDOW_SECS * 1000;

/// One second of the RPM/TPM window. Short keys keep the stored JSON compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Bucket {
    /// Unix second.
    #[serde(rename = "s")]
    pub(super) sec: u64,
    #[serde(rename = "r")]
    pub(super) requests: u32,
    #[serde(rename = "t")]
    pub(super) tokens: u64,
}

impl Quota {
    /// Time until enough of the oldest buckets leave the window for `fits(requests, tokens)`
    /// to hold, clamped to [1, 60_000] ms (60_000 when it never holds).
    pub(super) fn wait_until_fits(&self, now_ms: u64, fits: impl Fn(u64, u64) -> bool) -> u64 {
        let (mut requests, mut tokens) = self.window_totals(now_ms);
        for b in self.live_buckets(now_ms) {
            requests = requests.saturating_sub(u64::from(b.requests));
            tokens = tokens.saturating_sub(b.tokens);
            if fits(requests, tokens) {
                return leaves_in_ms(b.sec, now_ms).clamp(1, WINDOW_MS);
            }
        }
        WINDOW_MS
    }

    /// Time until the oldest bucket matching `pred` leaves the window (0 if none).
    pub(super) fn reset_ms(&self, now_ms: u64, pred: impl Fn(&Bucket) -> bool) -> u64 {
        self.live_buckets(now_ms)
            .find(|b| pred(b))
            .map_or(0, |b| leaves_in_ms(b.sec, now_ms).min(WINDOW_MS))
    }

    fn live_buckets(&self, now_ms: u64) -> impl Iterator<Item = &Bucket> + Clone + '_ {
        self.window.iter().filter(move |b| in_window(b.sec, now_ms))
    }

    pub(super) fn window_totals(&self, now_ms: u64) -> (u64, u64) {
        let buckets = self.live_buckets(now_ms);
        let requests = buckets.clone().map(|b| u64::from(b.requests));
        let tokens = buckets.map(|b| b.tokens);
        (sat_sum(requests), sat_sum(tokens))
    }

    /// Adds to the bucket of Unix second `sec`, inserting it in order if absent.
    pub(super) fn add_to_bucket(&mut self, sec: u64, requests: u32, tokens: u64) {
        if let Some(b) = self.window.iter_mut().find(|b| b.sec == sec) {
            b.requests = b.requests.saturating_add(requests);
            b.tokens = b.tokens.saturating_add(tokens);
            return;
        }
        let pos = self
            .window
            .iter()
            .position(|b| b.sec > sec)
            .unwrap_or(self.window.len());
        let bucket = Bucket {
            sec,
            requests,
            tokens,
        };
        self.window.insert(pos, bucket);
    }

    /// Replaces reservation `r`'s tokens by `tokens` in its bucket, if still in the window.
    pub(super) fn retoken(&mut self, r: &Reservation, tokens: u64, now_ms: u64) {
        let sec = r.at_ms / 1000;
        if !in_window(sec, now_ms) {
            return;
        }
        if let Some(b) = self.window.iter_mut().find(|b| b.sec == sec) {
            b.tokens = b.tokens.saturating_sub(r.tokens).saturating_add(tokens);
        }
    }
}

/// Whether the bucket of Unix second `sec` is inside the 60 s window ending at `now_ms`.
/// Buckets from the future (the clock went back) count as inside.
pub(super) fn in_window(sec: u64, now_ms: u64) -> bool {
    sec.saturating_add(WINDOW_SECS) > now_ms / 1000
}

fn leaves_in_ms(sec: u64, now_ms: u64) -> u64 {
    sec.saturating_add(WINDOW_SECS)
        .saturating_mul(1000)
        .saturating_sub(now_ms)
}
