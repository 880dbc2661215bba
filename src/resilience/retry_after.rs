//! Parses Retry-After hints: `retry-after-ms`, `retry-after` in seconds or as an HTTP date.

/// Returns the hinted wait in ms, given the current time in ms since the Unix epoch.
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_ms: u64,
) -> Option<u64> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(ms.min(86_400_000.0) as u64);
        }
    }
    let value = retry_after?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some((secs * 1000.0).min(86_400_000.0) as u64);
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let when_ms = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(when_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_retry_after(None, Some("2"), 0), Some(2000));
        assert_eq!(parse_retry_after(None, Some("0.5"), 0), Some(500));
        assert_eq!(parse_retry_after(Some("150"), Some("2"), 0), Some(150));
        assert_eq!(parse_retry_after(None, Some("garbage"), 0), None);
        assert_eq!(parse_retry_after(None, Some("-3"), 0), None);
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s
        assert_eq!(
            parse_retry_after(None, Some("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_770_000),
            Some(7000)
        );
        assert_eq!(
            parse_retry_after(None, Some("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_790_000),
            Some(0)
        );
    }
}
