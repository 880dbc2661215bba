//! The admin API's money view of one gateway key (`GET /admin/api/money`): its day and month
//! spend against its budgets, and its money figures over a window. Pure.

use super::quota::{Limits, Spend};
use super::stats::rate_bps;
use crate::usage::format_usd;
use serde_json::{json, Value};

/// `{"day": {...}, "month": {...}}`, each `{"spent_nanos", "spent_usd", "budget_nanos",
/// "budget_usd", "use_bps"}` (budget and use null when the key has no such budget; `use_bps`
/// may pass 10_000: spend past the budget is shown, not capped). Spend null when unknown.
pub fn budget_use(limits: &Limits, spend: Option<&Spend>) -> Value {
    let period = |budget: Option<u64>, spent: Option<u64>| {
        json!({
            "spent_nanos": spent,
            "spent_usd": spent.map(format_usd),
            "budget_nanos": budget,
            "budget_usd": budget.map(format_usd),
            "use_bps": budget.zip(spent).map(|(b, s)| if b == 0 {
                if s == 0 { 0 } else { u64::MAX }
            } else {
                rate_bps(s, b)
            }),
        })
    };
    json!({
        "day": period(limits.budget_day_nanos, spend.map(|s| s.day_nanos)),
        "month": period(limits.budget_month_nanos, spend.map(|s| s.month_nanos)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_is_spend_over_budget_in_basis_points() {
        let limits = Limits {
            budget_day_nanos: Some(1_000_000_000),
            ..Limits::default()
        };
        let spend = Spend {
            day_nanos: 250_000_000,
            month_nanos: 900_000_000,
            ..Spend::default()
        };
        let v = budget_use(&limits, Some(&spend));
        assert_eq!(v["day"]["use_bps"], 2_500);
        assert_eq!(v["day"]["budget_usd"], "1");
        assert_eq!(v["day"]["spent_usd"], "0.25");
        assert_eq!(v["month"]["use_bps"], Value::Null, "no month budget");
        assert_eq!(v["month"]["spent_nanos"], 900_000_000);
        let over = Spend {
            day_nanos: 1_500_000_000,
            ..Spend::default()
        };
        assert_eq!(budget_use(&limits, Some(&over))["day"]["use_bps"], 15_000);
        assert_eq!(budget_use(&limits, None)["day"]["use_bps"], Value::Null);
    }
}
