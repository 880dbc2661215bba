//! Exact decimal USD amounts → integer nano-USD. Config never holds floats: prices are written
//! by humans as decimals (`0.15`) and must not pick up binary rounding on the way in.

use serde_json::Value;

/// Nano-USD in one USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Parses a non-negative decimal USD amount (JSON number or string) into nano-USD.
/// Accepts at most 9 fractional digits (one nano-USD) and at most 1,000,000 USD.
pub fn usd_to_nanos(value: &Value) -> Result<u64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("must be a decimal number of USD, like 0.15".into()),
    };
    parse_decimal(&text).ok_or_else(|| format!("{text:?} is not a non-negative decimal USD amount with at most 9 decimals, up to 1000000"))
}

fn parse_decimal(text: &str) -> Option<u64> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) || frac_part.len() > 9 {
        return None;
    }
    let whole: u64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    if whole > 1_000_000 {
        return None;
    }
    let mut frac: u64 = 0;
    for (i, b) in frac_part.bytes().enumerate() {
        frac += u64::from(b - b'0') * 10u64.pow(8 - i as u32);
    }
    whole.checked_mul(NANOS_PER_USD)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_decimals() {
        assert_eq!(usd_to_nanos(&json!(0.15)), Ok(150_000_000));
        assert_eq!(usd_to_nanos(&json!("2.5")), Ok(2_500_000_000));
        assert_eq!(usd_to_nanos(&json!(10)), Ok(10_000_000_000));
        assert_eq!(usd_to_nanos(&json!("0.000000001")), Ok(1));
        assert_eq!(usd_to_nanos(&json!(0.075)), Ok(75_000_000));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert!(usd_to_nanos(&json!(-1)).is_err());
        assert!(usd_to_nanos(&json!("1e3")).is_err());
        assert!(usd_to_nanos(&json!("0.0000000001")).is_err());
        assert!(usd_to_nanos(&json!("abc")).is_err());
        assert!(usd_to_nanos(&json!(null)).is_err());
        assert!(usd_to_nanos(&json!("2000000")).is_err());
    }
}
