//! Token usage and cost. "Not reported" (None) is kept apart from "reported as zero", and
//! money is integer nano-USD computed from integer prices, so sums never drift.

use crate::config::Price;
use serde_json::Value;

pub mod estimate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache (Anthropic), when reported.
    pub cache_write_tokens: Option<u64>,
    /// Output tokens spent reasoning, when reported (OpenAI `reasoning_tokens`, Gemini
    /// `thoughtsTokenCount`): already part of `completion_tokens`, and billed as output.
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Reads an OpenAI-style `usage` object; None when absent or not an object.
    pub fn from_openai(v: &Value) -> Option<Usage> {
        let o = v.as_object()?;
        let n = |k: &str| o.get(k).and_then(Value::as_u64);
        Some(Usage {
            prompt_tokens: n("prompt_tokens").unwrap_or(0),
            completion_tokens: n("completion_tokens").unwrap_or(0),
            cached_tokens: o
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64),
            cache_write_tokens: None,
            reasoning_tokens: o
                .get("completion_tokens_details")
                .and_then(|d| d.get("reasoning_tokens"))
                .and_then(Value::as_u64),
        })
    }

    /// Cost in nano-USD, rounded up to the next nano-USD: each class of token at its price.
    /// `prompt_tokens` counts every prompt token (each provider's usage is read that way), of
    /// which `cached_tokens` were read from the provider's cache and `cache_write_tokens`
    /// written to it; the rest are priced as plain input.
    pub fn cost_nanos(&self, price: &Price) -> u64 {
        let cached = self.cached_tokens.unwrap_or(0).min(self.prompt_tokens);
        let written = self
            .cache_write_tokens
            .unwrap_or(0)
            .min(self.prompt_tokens - cached);
        let plain = self.prompt_tokens - cached - written;
        let at = |tokens: u64, nanos_per_mtok: u64| u128::from(tokens) * u128::from(nanos_per_mtok);
        let total = at(plain, price.input_nanos_per_mtok)
            + at(cached, price.cached_input_nanos_per_mtok)
            + at(written, price.cache_write_nanos_per_mtok)
            + at(self.completion_tokens, price.output_nanos_per_mtok);
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// What reading prompt tokens from the provider's cache saved, in nano-USD: the cost with
/// every cached token priced as plain input, minus the actual cost (0 when nothing was read
/// from the cache, or when the cached price is not lower).
pub fn cache_savings_nanos(usage: &Usage, price: &Price) -> u64 {
    if usage.cached_tokens.unwrap_or(0) == 0 {
        return 0;
    }
    let uncached = Usage {
        cached_tokens: None,
        ..*usage
    };
    uncached
        .cost_nanos(price)
        .saturating_sub(usage.cost_nanos(price))
}

/// Formats nano-USD as a decimal USD string without float rounding (`1234` → `0.000001234`).
pub fn format_usd(nanos: u64) -> String {
    let whole = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let s = format!("{whole}.{frac:09}");
    s.trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact() {
        let price = Price::flat(150_000_000, 600_000_000);
        let u = Usage {
            prompt_tokens: 1000,
            completion_tokens: 500,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
        };
        // 1000 * 0.15/1e6 + 500 * 0.6/1e6 = 0.00015 + 0.0003 = 0.00045 USD
        assert_eq!(u.cost_nanos(&price), 450_000);
        assert_eq!(format_usd(450_000), "0.00045");
        assert_eq!(format_usd(2_000_000_000), "2");
        assert_eq!(
            Usage {
                prompt_tokens: 1,
                completion_tokens: 0,
                cached_tokens: None,
                cache_write_tokens: None,
                reasoning_tokens: None
            }
            .cost_nanos(&Price::flat(1, 0)),
            1
        );
    }

    #[test]
    fn cache_reads_and_writes_are_priced_apart() {
        // Anthropic's Sonnet-like prices: input $3, output $15, cache read $0.30, write $3.75.
        let price = Price {
            input_nanos_per_mtok: 3_000_000_000,
            output_nanos_per_mtok: 15_000_000_000,
            cached_input_nanos_per_mtok: 300_000_000,
            cache_write_nanos_per_mtok: 3_750_000_000,
        };
        let u = Usage {
            prompt_tokens: 10_000,
            completion_tokens: 100,
            cached_tokens: Some(8_000),
            cache_write_tokens: Some(1_000),
            reasoning_tokens: None,
        };
        // 1,000 plain × 3 + 8,000 × 0.3 + 1,000 × 3.75 + 100 × 15 = 3,000 + 2,400 + 3,750
        // + 1,500 = 10,650 µUSD.
        assert_eq!(u.cost_nanos(&price), 10_650_000);
        // The 8,000 cached tokens would have cost 8,000 × 3 = 24,000 µUSD as plain input.
        assert_eq!(cache_savings_nanos(&u, &price), 21_600_000);
        let none = Usage {
            cached_tokens: Some(0),
            ..u
        };
        assert_eq!(cache_savings_nanos(&none, &price), 0);
        // Without cache prices (the default) the same usage costs what it always did.
        let flat = Price::flat(3_000_000_000, 15_000_000_000);
        assert_eq!(u.cost_nanos(&flat), 10_000 * 3_000 + 100 * 15_000);
        // Reported cache tokens never exceed the prompt (a provider's inconsistent report).
        let odd = Usage {
            prompt_tokens: 10,
            completion_tokens: 0,
            cached_tokens: Some(50),
            cache_write_tokens: Some(5),
            reasoning_tokens: None,
        };
        assert_eq!(odd.cost_nanos(&price), 10 * 300);
    }

    #[test]
    fn reasoning_tokens_are_kept_apart_and_billed_as_output() {
        let u = Usage::from_openai(&serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 50,
            "completion_tokens_details": {"reasoning_tokens": 30}
        }))
        .unwrap();
        assert_eq!(u.reasoning_tokens, Some(30));
        let plain = Usage {
            reasoning_tokens: None,
            ..u
        };
        let price = Price::flat(1_000_000_000, 2_000_000_000);
        assert_eq!(u.cost_nanos(&price), plain.cost_nanos(&price));
        assert_eq!(u.cost_nanos(&price), 10 * 1_000 + 50 * 2_000);
    }
}
