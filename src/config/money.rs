//! Exact decimal USD amounts → integer nano-USD. Config never holds floats: prices are written
//! by humans as decimals (`0.15`) and must not pick up binary rounding on the way in.

use serde_json::Value;

/// Nano-USD in one USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// Parses a non-negative decimal USD amount (JSON number or string) into nano-USD.
/// Accepts at most 9 fractional digits (one nano-USD) and at most 1,000,000 USD.
pub fn usd_to_nanos(value: &Value) -> Result<u64, String> {
    let text = match value {
        // serde_json writes small and large numbers in exponent form (`9e-6`).
        Value::Number(n) => expand_exponent(&n.to_string()),
        Value::String(s) => s.trim().to_string(),
        _ => return Err("must be a decimal number of USD, like 0.15".into()),
    };
    parse_decimal(&text).ok_or_else(|| format!("{text:?} is not a non-negative decimal USD amount with at most 9 decimals, up to 1000000"))
}

/// `9e-6` → `0.000009`, `1.5e3` → `1500`; text without an exponent is returned as is, and
/// anything unparsable is returned unchanged (for the error message).
fn expand_exponent(text: &str) -> String {
    let Some((mantissa, exp)) = text.split_once(['e', 'E']) else {
        return text.to_string();
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return text.to_string();
    };
    if exp.unsigned_abs() > 30 || mantissa.starts_with('-') {
        return text.to_string();
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    // Position of the decimal point within `digits` after shifting.
    let point = int_part.len() as i32 + exp;
    let out = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    out
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
        // serde_json prints these in exponent form.
        assert_eq!(usd_to_nanos(&json!(0.000009)), Ok(9_000));
        assert_eq!(usd_to_nanos(&json!(0.000001)), Ok(1_000));
        assert_eq!(usd_to_nanos(&json!(1.5e-7)), Ok(150));
        assert_eq!(usd_to_nanos(&json!(100000.0)), Ok(100_000 * NANOS_PER_USD));
        let big: Value = serde_json::from_str("1e5").unwrap();
        assert_eq!(usd_to_nanos(&big), Ok(100_000 * NANOS_PER_USD));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert!(usd_to_nanos(&json!(-1)).is_err());
        assert!(usd_to_nanos(&json!("1e3")).is_err());
        assert!(usd_to_nanos(&json!("0.0000000001")).is_err());
        assert!(usd_to_nanos(&json!("abc")).is_err());
        assert!(usd_to_nanos(&json!(null)).is_err());
        assert!(usd_to_nanos(&json!("2000000")).is_err());
        assert!(usd_to_nanos(&json!(1e-10)).is_err(), "below one nano-USD");
        assert!(usd_to_nanos(&json!(1e7)).is_err());
    }
}
