//! An hourly series of tallies for the last `KEEP_HOURS` hours (UTC hours, by `now_ms`).
//!
//! Invariant: at most one slot per hour, sorted oldest first, and only hours inside the
//! retention horizon (`KEEP_HOURS` counting the newest slot's hour), so the stored JSON stays
//! bounded however long the object lives. A tally for an hour already behind the horizon is
//! dropped. Window sums count only the hours inside the window ending at `now_ms`, so a slot
//! not yet pruned (no write since) is never counted once it is out of the window.
//!
//! Pure: timestamps come in as `now_ms` (Unix epoch milliseconds).

use serde::{Deserialize, Serialize};

/// Hourly slots kept, counting the current hour.
pub const KEEP_HOURS: u64 = 48;
pub const MS_PER_HOUR: u64 = 3_600_000;

/// Something that can be added up hour by hour.
pub trait Tally: Default + Clone {
    fn merge(&mut self, other: &Self);
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de> + Default"))]
struct Slot<T> {
    #[serde(rename = "n")]
    hour: u64,
    #[serde(rename = "v")]
    value: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct Hourly<T> {
    /// Oldest first.
    #[serde(rename = "h")]
    slots: Vec<Slot<T>>,
}

impl<T> Default for Hourly<T> {
    fn default() -> Self {
        Hourly { slots: Vec::new() }
    }
}

impl<T: Tally> Hourly<T> {
    /// Applies `f` to the tally of the hour of `now_ms` (made if absent), then prunes.
    pub fn add(&mut self, now_ms: u64, f: impl FnOnce(&mut T)) {
        let hour = now_ms / MS_PER_HOUR;
        let newest = self.slots.last().map_or(hour, |last| last.hour.max(hour));
        let oldest = newest.saturating_sub(KEEP_HOURS - 1);
        if hour >= oldest {
            match self.slots.iter().position(|s| s.hour >= hour) {
                Some(i) if self.slots.get(i).is_some_and(|s| s.hour == hour) => {
                    if let Some(slot) = self.slots.get_mut(i) {
                        f(&mut slot.value);
                    }
                }
                at => {
                    let mut value = T::default();
                    f(&mut value);
                    self.slots
                        .insert(at.unwrap_or(self.slots.len()), Slot { hour, value });
                }
            }
        }
        self.slots.retain(|s| s.hour >= oldest);
    }

    /// The sum over the last `hours` hours ending with the hour of `now_ms` (`hours` is
    /// clamped to 1..=`KEEP_HOURS`).
    pub fn window(&self, now_ms: u64, hours: u64) -> T {
        let mut sum = T::default();
        for (_, v) in self.series(now_ms, hours) {
            sum.merge(v);
        }
        sum
    }

    /// (hour start in ms, tally) of the hours in the window, oldest first; hours without a
    /// slot are left out.
    pub fn series(&self, now_ms: u64, hours: u64) -> impl Iterator<Item = (u64, &T)> {
        let now_hour = now_ms / MS_PER_HOUR;
        let first = now_hour.saturating_sub(hours.clamp(1, KEEP_HOURS) - 1);
        self.slots
            .iter()
            .filter(move |s| s.hour >= first && s.hour <= now_hour)
            .map(|s| (s.hour.saturating_mul(MS_PER_HOUR), &s.value))
    }

    /// The newest hour with a slot, as its start in ms.
    pub fn newest_ms(&self) -> Option<u64> {
        self.slots
            .last()
            .map(|s| s.hour.saturating_mul(MS_PER_HOUR))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Tally for u64 {
        fn merge(&mut self, other: &Self) {
            *self = self.saturating_add(*other);
        }
    }

    const H: u64 = MS_PER_HOUR;

    #[test]
    fn keeps_one_slot_per_hour_and_at_most_keep_hours() {
        let mut s: Hourly<u64> = Hourly::default();
        for hour in 0..100 {
            s.add(hour * H + 5, |v| *v += 1);
            s.add(hour * H + 10, |v| *v += 1);
        }
        assert_eq!(s.len(), KEEP_HOURS as usize);
        assert_eq!(s.window(99 * H, 48), 96);
        assert_eq!(s.window(99 * H, 6), 12);
        assert_eq!(s.window(99 * H, 1), 2);
        // Asking for more than is kept is the same as asking for all of it.
        assert_eq!(s.window(99 * H, 1_000), 96);
    }

    #[test]
    fn windows_end_at_now_and_forget_hours_that_left_them() {
        let mut s: Hourly<u64> = Hourly::default();
        s.add(10 * H, |v| *v += 5);
        s.add(20 * H, |v| *v += 7);
        assert_eq!(s.window(20 * H + 1, 6), 7);
        assert_eq!(s.window(20 * H + 1, 24), 12);
        // No write since hour 20, but at hour 68 nothing is inside 48 hours any more.
        assert_eq!(s.window(67 * H, 48), 7);
        assert_eq!(s.window(68 * H, 48), 0);
        // A slot of the future (a clock behind the writer's) is not counted yet.
        assert_eq!(s.window(10 * H, 48), 5);
    }

    #[test]
    fn a_late_sample_goes_in_order_or_is_dropped_behind_the_horizon() {
        let mut s: Hourly<u64> = Hourly::default();
        s.add(100 * H, |v| *v += 1);
        s.add(90 * H, |v| *v += 2);
        s.add(10 * H, |v| *v += 4);
        let hours: Vec<u64> = s.series(100 * H, 48).map(|(t, _)| t / H).collect();
        assert_eq!(hours, vec![90, 100]);
        assert_eq!(s.window(100 * H, 48), 3);
        assert_eq!(s.newest_ms(), Some(100 * H));
    }
}
