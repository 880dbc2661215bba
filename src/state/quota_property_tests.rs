//! Property tests of the quota: long pseudo-random sequences of admissions, settles and
//! releases, checked against the invariants the key objects rely on.

use super::tests::*;
use super::*;

/// xorshift64: deterministic pseudo-random sequence for the property tests.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn property_rpm_never_exceeded_and_retry_after_is_exact() {
    for seed in [1u64, 0x9E37_79B9, 0xDEAD_BEEF, 42] {
        let mut rng = XorShift(seed);
        let mut q = Quota::default();
        let l = rpm(7);
        let mut now = LEAP_DAY + rng.below(1000);
        let mut admitted_secs: Vec<u64> = Vec::new();
        for step in 0..3000 {
            now += rng.below(3000);
            let a = q.admit(&format!("s{step}"), &l, est(0, 0), now);
            if let Some((reason, retry)) = denial(&a) {
                assert_eq!(reason, Denial::Rpm);
                assert!(!is_admitted(&q.clone().admit(
                    "p",
                    &l,
                    est(0, 0),
                    now + retry - 1
                )));
                assert!(is_admitted(&q.clone().admit(
                    "p",
                    &l,
                    est(0, 0),
                    now + retry
                )));
            } else {
                admitted_secs.push(now / 1000);
                let sec = now / 1000;
                let in_window = admitted_secs.iter().filter(|s| **s + 60 > sec).count();
                assert!(in_window <= 7, "seed {seed} step {step}: {in_window}");
            }
        }
    }
}

/// Random admit/settle/release traffic against day and month budgets. After every step:
/// `spent + reserved <= budget + overshoot`, where `overshoot` sums `actual − estimate` of
/// settles since the last admission (the reservations that were in flight at that moment).
/// With `actual <= estimate`, spend never exceeds the budget.
fn budget_property(seed: u64, allow_overshoot: bool) {
    let mut rng = XorShift(seed);
    let l = Limits {
        budget_day_nanos: Some(20_000_000),
        budget_month_nanos: Some(30_000_000),
        ..Limits::default()
    };
    let (day_budget, month_budget) = (20_000_000u64, 30_000_000u64);
    let mut q = Quota::default();
    // Starts 40 minutes before midnight at the end of February, so both periods roll over.
    let mut now = MAR_1_2024 - 40 * MIN;
    let mut in_flight: Vec<(String, u64, u64)> = Vec::new(); // (id, cost, admitted at)
    let (mut overshoot, mut admitted, mut denied, mut late) = (0u64, 0u32, 0u32, 0u32);
    for step in 0..6000 {
        now += rng.below(1000);
        match rng.below(10) {
            0..=4 => {
                let cost = 1 + rng.below(200_000);
                let id = format!("s{step}");
                match q.admit(&id, &l, est(rng.below(500), cost), now) {
                    Admission::Admitted { .. } => {
                        in_flight.push((id, cost, now));
                        overshoot = 0;
                        admitted += 1;
                    }
                    Admission::Denied { reason, .. } => {
                        assert!(matches!(reason, Denial::BudgetDay | Denial::BudgetMonth));
                        denied += 1;
                    }
                }
            }
            op if !in_flight.is_empty() => {
                let i = usize::try_from(rng.below(in_flight.len() as u64)).unwrap();
                let (id, cost, at) = in_flight.swap_remove(i);
                if op == 9 {
                    assert_eq!(q.release(&id, now), now < at + RESERVATION_TTL_MS);
                    continue;
                }
                let actual = if allow_overshoot {
                    rng.below(2 * cost + 1)
                } else {
                    rng.below(cost + 1)
                };
                let known = q.settle(&id, act(0, actual), now);
                assert_eq!(known, now < at + RESERVATION_TTL_MS);
                // An expired reservation's late spend is all overshoot.
                overshoot += if known {
                    actual.saturating_sub(cost)
                } else {
                    actual
                };
                late += u32::from(!known);
            }
            _ => {}
        }
        let s = q.spend(now);
        assert!(
            s.day_nanos + s.reserved_nanos <= day_budget + overshoot,
            "seed {seed} step {step}"
        );
        assert!(
            s.month_nanos + s.reserved_nanos <= month_budget + overshoot,
            "seed {seed} step {step}"
        );
        if !allow_overshoot && late == 0 {
            assert!(s.day_nanos <= day_budget && s.month_nanos <= month_budget);
        }
    }
    assert!(
        admitted > 100 && denied > 100,
        "{admitted} admitted, {denied} denied"
    );
}

#[test]
fn property_budget_never_exceeded_when_actual_within_estimate() {
    for seed in [7u64, 0x1234_5678, 0xCAFE_F00D] {
        budget_property(seed, false);
    }
}

#[test]
fn property_budget_overshoot_bounded_by_in_flight_excess() {
    for seed in [11u64, 0x0BAD_5EED, 0xFEED_FACE] {
        budget_property(seed, true);
    }
}
