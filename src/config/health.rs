//! Validation of the circuit-breaker and deployment-limit blocks: `defaults.breaker` first,
//! then each deployment's `breaker` overriding it field by field.

use super::check::Errors;
use super::raw::{RawBreaker, RawLimits};
use super::types::{BreakerPolicy, DeploymentLimits};
use crate::resilience::ErrorClass;
use crate::state::breaker::BreakerConfig;

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            enabled: true,
            config: BreakerConfig::default(),
            // Every class that says the provider, not the request, failed (an answer off its
            // schema says the model is not up to the task, not that it is down).
            counted: ErrorClass::ALL
                .into_iter()
                .filter(|c| !c.is_client_fault() && *c != ErrorClass::InvalidOutput)
                .collect(),
            cron_probe: true,
        }
    }
}

/// `raw` on top of `base`; `attempt_ms` sizes the probe lease (a probe cannot outlive its attempt).
pub(super) fn breaker(
    path: &str,
    raw: &RawBreaker,
    base: &BreakerPolicy,
    attempt_ms: u64,
    errs: &mut Errors,
) -> BreakerPolicy {
    let b = &base.config;
    let window_ms = errs.ms(&format!("{path}.window_ms"), raw.window_ms, b.window_ms);
    let cooldown_ms = errs.ms(
        &format!("{path}.cooldown_ms"),
        raw.cooldown_ms,
        b.cooldown_ms,
    );
    // Unset, the cap is at least the cooldown: a longer cooldown alone stays valid.
    let cooldown_max_ms = errs.ms(
        &format!("{path}.cooldown_max_ms"),
        raw.cooldown_max_ms,
        b.cooldown_max_ms.max(cooldown_ms),
    );
    if cooldown_max_ms < cooldown_ms {
        errs.push(
            &format!("{path}.cooldown_max_ms"),
            "must not be below cooldown_ms",
        );
    }
    let failure_rate_bps = raw.failure_rate_bps.unwrap_or(b.failure_rate_bps);
    if failure_rate_bps > 10_000 {
        errs.push(
            &format!("{path}.failure_rate_bps"),
            "must be between 0 and 10000 (basis points; 0 disables)",
        );
    }
    let half_open_probes = raw.half_open_probes.unwrap_or(b.half_open_probes);
    if half_open_probes == 0 || half_open_probes > 100 {
        errs.push(
            &format!("{path}.half_open_probes"),
            "must be between 1 and 100",
        );
    }
    let counted = match &raw.count {
        None => base.counted.clone(),
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| match ErrorClass::from_name(name) {
                Some(c) if c.is_client_fault() => {
                    errs.push(
                        &format!("{path}.count[{i}]"),
                        format!("{name:?} is a client error and never counts"),
                    );
                    None
                }
                Some(c) => Some(c),
                None => {
                    let known: Vec<&str> = ErrorClass::ALL
                        .iter()
                        .filter(|c| !c.is_client_fault())
                        .map(|c| c.as_str())
                        .collect();
                    errs.push(
                        &format!("{path}.count[{i}]"),
                        format!("unknown error class {name:?} (known: {})", known.join(", ")),
                    );
                    None
                }
            })
            .collect(),
    };
    BreakerPolicy {
        enabled: raw.enabled.unwrap_or(base.enabled),
        config: BreakerConfig {
            consecutive_failures: raw.consecutive_failures.unwrap_or(b.consecutive_failures),
            failure_rate_bps,
            min_requests: raw.min_requests.unwrap_or(b.min_requests).max(1),
            window_ms,
            cooldown_ms,
            cooldown_max_ms,
            half_open_probes,
            probe_lease_ms: attempt_ms,
        },
        counted,
        cron_probe: raw.cron_probe.unwrap_or(base.cron_probe),
    }
}

pub(super) fn limits(path: &str, raw: &RawLimits, errs: &mut Errors) -> DeploymentLimits {
    if raw.rpm == Some(0) {
        errs.push(
            &format!("{path}.rpm"),
            "must be at least 1 (omit for no limit)",
        );
    }
    if raw.tpm == Some(0) {
        errs.push(
            &format!("{path}.tpm"),
            "must be at least 1 (omit for no limit)",
        );
    }
    DeploymentLimits {
        rpm: raw.rpm,
        tpm: raw.tpm,
    }
}
