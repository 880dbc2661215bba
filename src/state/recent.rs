//! Ids seen recently, so that a call retried after it succeeded (its reply was lost) is not
//! applied twice: a key's settles are retried, and each must count its spend once.
//!
//! Invariant: an id is remembered for at least `KEEP_MS` after it was first seen, unless more
//! than `MAX_IDS` ids arrive within that time (then the oldest go first); so the stored state
//! stays under about 40 KiB. A retry comes within seconds, far inside both bounds.

use serde::{Deserialize, Serialize};

/// How long an id is remembered.
pub const KEEP_MS: u64 = 120_000;
/// Most ids remembered.
pub const MAX_IDS: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecentIds {
    /// (id, first seen), oldest first.
    ids: Vec<(String, u64)>,
}

impl RecentIds {
    /// True the first time `id` is seen (it is then remembered), false for a repeat.
    pub fn first_time(&mut self, id: &str, now_ms: u64) -> bool {
        self.ids
            .retain(|(_, at)| at.saturating_add(KEEP_MS) > now_ms);
        if self.ids.iter().any(|(seen, _)| seen == id) {
            return false;
        }
        let excess = (self.ids.len() + 1).saturating_sub(MAX_IDS);
        self.ids.drain(..excess.min(self.ids.len()));
        self.ids.push((id.to_string(), now_ms));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_window_is_refused_and_the_state_stays_bounded() {
        let mut r = RecentIds::default();
        assert!(r.first_time("a", 0));
        assert!(!r.first_time("a", 1_000));
        assert!(r.first_time("b", 1_000));
        // Forgotten once the window has passed.
        assert!(r.first_time("a", KEEP_MS + 1));
        for i in 0..(MAX_IDS * 3) {
            assert!(r.first_time(&format!("id-{i}"), KEEP_MS + 2));
        }
        assert_eq!(r.ids.len(), MAX_IDS);
        // The newest are the ones kept.
        assert!(!r.first_time(&format!("id-{}", MAX_IDS * 3 - 1), KEEP_MS + 3));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.len() < 40_000, "{}", text.len());
    }
}
