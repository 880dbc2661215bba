//! A route's fallback ratio over the alert window, counted in the object of the route's first
//! deployment (every request of the route reports there, whichever deployment answered).
//!
//! Invariant: `ratio` counts the requests recorded in the last `window_ms` (in slots of a fifth
//! of it, so the window slides in steps of `window_ms / 5`) and nothing older; at most
//! `MAX_ROUTES` routes and `SLOTS + 1` slots each are kept, so the stored state stays small.
//! Why here: the isolate knows per request whether it fell back (`Sample::fallback`), but only
//! an object sees all isolates' requests; the first deployment's object is already called for
//! the route's requests' reports, so counting there costs no extra object call.
//!
//! Pure: `now_ms` comes in with every call.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SLOTS: u64 = 5;
/// Routes kept per object, at most (a deployment first in more routes than this counts the
/// ones it saw last).
pub const MAX_ROUTES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Slot {
    #[serde(rename = "s")]
    slot: u64,
    #[serde(rename = "r")]
    requests: u64,
    #[serde(rename = "f")]
    fallbacks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteFallbacks {
    routes: BTreeMap<String, Vec<Slot>>,
}

fn slot_ms(window_ms: u64) -> u64 {
    (window_ms / SLOTS).max(1)
}

impl RouteFallbacks {
    /// Counts one request of `route`, and whether it fell back.
    pub fn record(&mut self, route: &str, fell_back: bool, now_ms: u64, window_ms: u64) {
        if !self.routes.contains_key(route) && self.routes.len() >= MAX_ROUTES {
            // Make room: the route seen least recently goes.
            let stalest = self
                .routes
                .iter()
                .min_by_key(|(_, slots)| slots.last().map_or(0, |s| s.slot))
                .map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                self.routes.remove(&name);
            }
        }
        let slot = now_ms / slot_ms(window_ms);
        let slots = self.routes.entry(route.to_string()).or_default();
        slots.retain(|s| s.slot.saturating_add(SLOTS) > slot);
        match slots.last_mut() {
            Some(last) if last.slot == slot => {
                last.requests = last.requests.saturating_add(1);
                last.fallbacks = last.fallbacks.saturating_add(u64::from(fell_back));
            }
            _ => slots.push(Slot {
                slot,
                requests: 1,
                fallbacks: u64::from(fell_back),
            }),
        }
    }

    /// (fallbacks, requests) of `route` in the last `window_ms`.
    pub fn ratio(&self, route: &str, now_ms: u64, window_ms: u64) -> (u64, u64) {
        let slot = now_ms / slot_ms(window_ms);
        self.routes
            .get(route)
            .map(|slots| {
                slots
                    .iter()
                    .filter(|s| s.slot.saturating_add(SLOTS) > slot)
                    .fold((0, 0), |(f, r), s| (f + s.fallbacks, r + s.requests))
            })
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 300_000;

    #[test]
    fn counts_the_window_and_forgets_what_left_it() {
        let mut f = RouteFallbacks::default();
        for i in 0..10 {
            f.record("r", i % 2 == 0, 1_000, W);
        }
        f.record("other", true, 1_000, W);
        assert_eq!(f.ratio("r", 1_000, W), (5, 10));
        assert_eq!(f.ratio("r", W - 1, W), (5, 10));
        f.record("r", true, W + 60_000, W);
        // The first slot (0..60 s) has left the window at 300 s.
        assert_eq!(f.ratio("r", W + 60_000, W), (1, 1));
        assert_eq!(f.ratio("none", 0, W), (0, 0));
    }

    #[test]
    fn routes_are_bounded() {
        let mut f = RouteFallbacks::default();
        for i in 0..(MAX_ROUTES as u64 + 10) {
            f.record(&format!("r{i}"), false, i * 1_000, W);
        }
        assert_eq!(f.routes.len(), MAX_ROUTES);
        assert_eq!(f.ratio("r0", 100_000, W), (0, 0), "the stalest went");
        assert_eq!(f.ratio(&format!("r{}", MAX_ROUTES + 9), 100_000, W), (0, 1));
    }
}
