//! The budget periods of a [`Quota`](super::Quota): settled spend per UTC day and per UTC
//! calendar month, and the civil-date arithmetic behind them (no time-zone data needed).

use serde::{Deserialize, Serialize};

pub(super) const MS_PER_DAY: u64 = 86_400_000;

/// Settled spend of one period (UTC day number, or month number = year * 12 + month - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Period {
    id: u64,
    nanos: u64,
}

impl Period {
    /// Spend in period `current`. A stored period newer than `current` (the clock went back)
    /// still counts, erring on the side of enforcing the budget.
    pub(super) fn spent(&self, current: u64) -> u64 {
        if self.id >= current {
            self.nanos
        } else {
            0
        }
    }
    pub(super) fn add(&mut self, current: u64, nanos: u64) {
        if self.id < current {
            *self = Period {
                id: current,
                nanos: 0,
            };
        }
        self.nanos = self.nanos.saturating_add(nanos);
    }
}

pub(super) fn day_of(now_ms: u64) -> u64 {
    now_ms / MS_PER_DAY
}

/// Month number `year * 12 + (month - 1)` of the UTC date at `now_ms`.
pub(super) fn month_of(now_ms: u64) -> u64 {
    let (y, m, _) = civil_from_days(day_of(now_ms));
    y.saturating_mul(12).saturating_add(m.saturating_sub(1))
}

/// Start (Unix ms) of the UTC calendar month after the one holding `now_ms`.
pub(super) fn next_month_start_ms(now_ms: u64) -> u64 {
    let (y, m, _) = civil_from_days(day_of(now_ms));
    let (y, m) = (y.saturating_add(m / 12), m % 12 + 1); // m is 1..=12
    days_from_civil(y, m, 1).saturating_mul(MS_PER_DAY)
}

/// (year, month 1..=12, day 1..=31) of a day number counted from 1970-01-01, after Howard
/// Hinnant's `civil_from_days`, restricted to dates on or after the epoch.
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe.saturating_add(era.saturating_mul(400));
    let y = if m <= 2 { y.saturating_add(1) } else { y };
    (y, m, d)
}

/// Day number (from 1970-01-01) of a civil date on or after the epoch; inverse of
/// `civil_from_days`.
pub(super) fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y.saturating_sub(1) } else { y };
    let era = y / 400;
    let yoe = y % 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + d.saturating_sub(1); // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era.saturating_mul(146_097)
        .saturating_add(doe)
        .saturating_sub(719_468)
}
